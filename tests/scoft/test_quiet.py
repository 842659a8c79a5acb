"""The scoft commands print no third-party notice a user cannot act on, and every other warning still shows."""

import logging
import subprocess
import sys
import warnings
from pathlib import Path

from scoft.quiet import TORCHVISION_FALLBACK, quiet_third_party

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_command_prints_no_library_noise(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scoft", "tiny", "--out", str(tmp_path / "m"), "--parts", "sd", "depth", "backbone"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for noise in ("requires torchvision", "Writing model shards", "Loading weights", "torch_dtype"):
        assert noise not in proc.stderr, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if not line.strip()], proc.stderr  # no blank lines


def test_filters_are_precise(caplog, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    quiet_third_party()
    logger = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.WARNING, logger="transformers.utils.import_utils"):
        logger.warning("`XImageProcessor` %s `XImageProcessorPil`", TORCHVISION_FALLBACK)
        logger.warning("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_third_party()
        warnings.warn("`torch_dtype` is deprecated and will be removed", FutureWarning, stacklevel=1)
        warnings.warn("`other_arg` is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["`other_arg` is deprecated"]
