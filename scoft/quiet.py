"""Third-party output a user of the ``scoft`` commands cannot act on, filtered precisely (everything else stays).

- transformers' notice that an image processor falls back to its PIL version because torchvision is missing
  (torchvision is deliberately not installed: it does not import beside the CPU torch build);
- diffusers' ``torch_dtype`` deprecation (raised inside diffusers for arguments it forwards itself);
- torch's note that oneDNN TF32 needs an Intel GPU;
- the model-loading progress bars of diffusers, transformers and huggingface_hub ("Loading pipeline components",
  "Loading weights", "Writing model shards"), which nest inside our own bars as stray blank lines.

Nothing is imported here: the loading bars are switched off when those libraries are first imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

TORCHVISION_FALLBACK = "requires torchvision (not installed); falling back to"


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback(module)`` right after ``name`` is first imported."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, callback = spec.loader, self.callback
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            callback(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _disable_bars(module: ModuleType) -> None:
    module.disable_progress_bar()


def after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    """``callback(module)`` now if ``name`` is imported, else as soon as it is."""
    if name in sys.modules:
        callback(sys.modules[name])
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, callback))


def quiet_third_party() -> None:
    """Apply the filters above (idempotent); called by the ``scoft`` entry points, not by the library."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message=r"`torch_dtype` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"TF32 acceleration on top of oneDNN", category=UserWarning)
    logger = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(TORCHVISION_FALLBACK))
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        after_import(name, _disable_bars)
