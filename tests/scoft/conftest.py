"""Shared fixtures for the scoft tests: one thread for torch, tiny offline models built once per session."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths of the tiny random models: keys ``sd``, ``controlnet``, ``depth``, ``captioner``, ``backbone``."""
    from scoft.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-models"), seed=0)
