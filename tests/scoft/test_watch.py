"""A run a researcher can watch: validation grids of fixed prompts x seeds, trackers, the CSV log always."""

import numpy as np
import pytest
from PIL import Image

from scoft.config import TrainConfig
from scoft.data import synthesize_ccub
from scoft.train import read_train_log, train
from scoft.validation import image_grid, validation_prompts
from scoft.watch import tracker_config, tracker_names

FAST = {
    "resolution": 64,
    "train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "mixed_precision": "no",
    "lora_rank": 4,
    "lora_alpha": 4,
    "learning_rate": 5e-2,
    "lr_schedule": "constant",
    "embedding_backend": "local",
}


def test_validation_grids_every_n_steps_with_fixed_prompts_and_seeds(tiny_models, tmp_path) -> None:
    data = tmp_path / "data"
    synthesize_ccub(data, culture="mexico", n_images=2, resolution=64, seed=0)
    cfg = TrainConfig(
        **FAST,
        variant="ldm",
        max_train_steps=4,
        validation_steps=2,
        validation_prompts=("a temple", "a dish"),
        validation_seeds=(3, 4, 5),
        validation_inference_steps=2,
        report_to="none",
    )
    result = train(cfg, tiny_models["sd"], data, tmp_path / "out", show_progress=False)
    grids = sorted((tmp_path / "out" / "validation").glob("*.png"))
    assert [g.name for g in grids] == ["step-000002.png", "step-000004.png"]
    first, last = (np.asarray(Image.open(g)) for g in grids)
    assert first.shape == (2 * 64, 3 * 64, 3)
    assert np.abs(first.astype(int) - last.astype(int)).max() > 0  # the LoRA moved between the two
    cells = [first[r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64] for r in range(2) for c in range(3)]
    assert len({c.tobytes() for c in cells}) == 6  # each prompt x seed its own image
    assert [r["step"] for r in read_train_log(result.log_path)] == [1, 2, 3, 4]  # the CSV is always written
    assert not (tmp_path / "out" / "logs").exists()


def test_validation_does_not_change_training(tiny_models, tmp_path) -> None:
    data = tmp_path / "data"
    synthesize_ccub(data, culture="korea", n_images=2, resolution=64, seed=0)
    logs = []
    for every in (0, 1):
        cfg = TrainConfig(
            **FAST, variant="ldm", max_train_steps=3, validation_steps=every, validation_inference_steps=2
        )
        logs.append(
            read_train_log(train(cfg, tiny_models["sd"], data, tmp_path / str(every), show_progress=False).log_path)
        )
    assert logs[0] == logs[1]
    assert len(list((tmp_path / "1" / "validation").glob("*.png"))) == 3


def test_validation_prompts_default_to_the_first_caption() -> None:
    class Rec:
        text = "a dance in Korea"

    assert validation_prompts(TrainConfig(), [Rec()]) == ["a dance in Korea"]
    assert validation_prompts(TrainConfig(validation_prompts=("x",)), [Rec()]) == ["x"]
    with pytest.raises(ValueError, match="2 x 2 grid needs 4"):
        image_grid([Image.new("RGB", (4, 4))] * 3, 2, 2)


def test_trackers_follow_report_to() -> None:
    import importlib.util

    installed = importlib.util.find_spec("tensorboard") is not None
    assert tracker_names("none") == []
    assert tracker_names("auto") == (["tensorboard"] if installed else [])
    if installed:
        assert tracker_names("tensorboard") == ["tensorboard"]
    else:
        with pytest.raises(ValueError, match="pip install tensorboard"):
            tracker_names("tensorboard")
    flat = tracker_config(TrainConfig(validation_prompts=("a", "b")))
    assert flat["validation_prompts"] == "a,b" and flat["lora_rank"] == 64
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())
