"""``scoft negatives`` end to end on the tiny models: files, metadata, seeds, resumption."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scoft import negatives
from scoft.data import read_metadata, synthesize_ccub


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    synthesize_ccub(tmp_path / "korea", culture="korea", n_images=2, resolution=64, seed=0)
    return tmp_path / "korea"


def args(tiny: dict[str, Path], data: Path, *extra: str) -> list[str]:
    return [
        "--base", str(tiny["sd"]), "--controlnet", str(tiny["controlnet"]), "--depth", str(tiny["depth"]),
        "--data", str(data), "--steps", "2", "--no-progress", *extra,
    ]  # fmt: skip


def run_cli(tiny: dict[str, Path], data: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "scoft", "negatives", *args(tiny, data, *extra)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_negative_seeds_depend_only_on_seed_file_and_k() -> None:
    a = negatives.negative_seed(1, "images/a.png", 0)
    assert a == negatives.negative_seed(1, "images/a.png", 0)
    others = {
        negatives.negative_seed(2, "images/a.png", 0),
        negatives.negative_seed(1, "images/b.png", 0),
        negatives.negative_seed(1, "images/a.png", 1),
    }
    assert a not in others and len(others) == 3
    assert 0 <= a < 2**63


def test_depth_map_becomes_a_normalised_three_channel_image() -> None:
    import numpy as np
    import torch

    image = negatives.depth_to_control(torch.linspace(0, 5, 16).reshape(4, 4), (8, 6))
    arr = np.asarray(image)
    assert arr.shape == (6, 8, 3) and image.mode == "RGB"
    assert arr.min() == 0 and arr.max() == 255
    assert (arr[..., 0] == arr[..., 1]).all()
    flat = negatives.depth_to_control(torch.ones(4, 4), (8, 8))
    assert np.asarray(flat).max() == 0


def test_negatives_end_to_end_on_tiny_models(
    tiny_models: dict[str, Path], data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = run_cli(tiny_models, data, "--k", "2", "--batch-size", "3")
    assert proc.returncode == 0, proc.stderr
    records = read_metadata(data)
    assert len(records) == 2
    for r in records:
        stem = Path(r.file_name).stem
        assert r.negative_imgpath == (f"negatives/{stem}_0.png", f"negatives/{stem}_1.png")
        for rel in r.negative_imgpath:
            from PIL import Image

            with Image.open(data / rel) as im:
                assert im.size == (64, 64)
        assert r.text and r.culture == "korea"
    first = {p: (data / p).read_bytes() for r in records for p in r.negative_imgpath}
    assert len(set(first.values())) == 4

    # a re-run makes nothing; a deleted negative is made again and listed
    capsys.readouterr()
    assert negatives.main(args(tiny_models, data, "--k", "2")) == 0
    assert "0 negatives made" in capsys.readouterr().out
    victim = records[1].negative_imgpath[0]
    (data / victim).unlink()
    assert negatives.main(args(tiny_models, data, "--k", "2", "--batch-size", "1")) == 0
    assert "1 negatives made" in capsys.readouterr().out
    assert (data / victim).is_file() and read_metadata(data) == records


def test_missing_model_folder_is_a_clear_error(
    tiny_models: dict[str, Path], data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = {**tiny_models, "controlnet": tmp_path / "nope"}
    assert negatives.main(args(tiny, data)) == 2
    err = capsys.readouterr().err
    assert "--controlnet folder not found" in err and str(tmp_path / "nope") in err
    assert not (data / "negatives").exists()


def test_negatives_are_rendered_from_the_training_crop(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wide photo: the depth model sees its centre square (what training crops), not the photo squashed."""
    import numpy as np
    from PIL import Image

    from scoft.data import CCUBDataset, training_crop

    data = tmp_path / "wide"
    records = synthesize_ccub(data, culture="korea", n_images=1, resolution=64, seed=0)
    wide = np.zeros((64, 128, 3), dtype=np.uint8)
    wide[:, :32] = (255, 0, 0)  # a red band at the left edge: outside the centre square
    wide[:, 48:80] = (0, 0, 255)
    Image.fromarray(wide).save(data / records[0].file_name)
    seen: list[Image.Image] = []
    original = negatives.DepthEstimator.control_image

    def record(self, image, size):
        seen.append(image.copy())
        return original(self, image, size)

    monkeypatch.setattr(negatives.DepthEstimator, "control_image", record)
    assert negatives.main(args(tiny_models, data, "--k", "1")) == 0
    (image,) = seen
    assert image.size == (64, 64)
    with Image.open(data / records[0].file_name) as src:
        assert np.array_equal(np.asarray(image), np.asarray(training_crop(src, 64)))
    assert not (np.asarray(image)[..., 0] > 200).any()  # the red band is cropped away
    positive = CCUBDataset(data, resolution=64, random_flip=False)[0]["pixel_values"]
    assert np.allclose((positive.numpy().transpose(1, 2, 0) + 1) * 127.5, np.asarray(image), atol=0.51)


def test_wrong_depth_folder_is_one_clear_line(
    tiny_models: dict[str, Path], data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert negatives.main(args({**tiny_models, "depth": tiny_models["backbone"]}, data)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--depth" in err and str(tiny_models["backbone"]) in err
    assert negatives.main(args({**tiny_models, "controlnet": tiny_models["depth"]}, data)) == 2
    assert "not a ControlNet folder" in capsys.readouterr().err
