"""Checkpoints and the final LoRA in the diffusers format: stock diffusers loads both, exactly; export-lora; resume."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from scoft.checkpoint import (
    LEGACY_CHECKPOINT_LORA,
    diffusers_to_peft,
    export_lora,
    export_main,
    load_checkpoint_lora,
    read_lora_file,
)
from scoft.config import TrainConfig
from scoft.data import synthesize_ccub
from scoft.lora import LORA_WEIGHT_NAME, add_lora, lora_state_dict

RUN = {
    "variant": "ldm",
    "resolution": 64,
    "train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "mixed_precision": "no",
    "lora_rank": 4,
    "lora_alpha": 8,  # alpha != rank: the loaded scale must be alpha / rank = 2
    "learning_rate": 5e-2,
    "lr_schedule": "constant",
    "checkpointing_steps": 2,
    "checkpoints_total_limit": 5,
    "max_train_steps": 4,
}


@pytest.fixture(scope="module")
def run_dir(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scoft.train import train

    data = tmp_path_factory.mktemp("ccub")
    synthesize_ccub(data, culture="korea", n_images=2, resolution=80, seed=0)
    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(**RUN), tiny_models["sd"], data, out, show_progress=False)
    assert result.finished
    return out


@pytest.fixture(scope="module")
def pipe(tiny_models: dict[str, Path]):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    return pipe("a building", num_inference_steps=2, generator=gen, output_type="np").images


def loaded_state(pipe) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    (name,) = pipe.get_list_adapters()["unet"]
    return get_peft_model_state_dict(pipe.unet, adapter_name=name)


@pytest.mark.parametrize("where", ["checkpoint-2", "."])
def test_mid_run_checkpoint_and_final_lora_load_in_stock_diffusers_exactly(run_dir: Path, pipe, where: str) -> None:
    folder = run_dir / where
    path = folder / LORA_WEIGHT_NAME
    assert path.is_file() and not (folder / LEGACY_CHECKPOINT_LORA).exists()
    tensors, adapter = read_lora_file(path)
    assert all(k.startswith("unet.") and ".lora." in k for k in tensors)
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)

    base = render(pipe)
    pipe.load_lora_weights(folder)
    try:
        tuned = render(pipe)
        state = loaded_state(pipe)
        scalings = {m.scaling[a] for m in pipe.unet.modules() if hasattr(m, "scaling") for a in m.scaling}
    finally:
        pipe.unload_lora_weights()
    assert np.abs(tuned - base).max() > 1e-3
    assert scalings == {2.0}
    want = diffusers_to_peft(tensors)
    assert state.keys() == want.keys() and all(torch.equal(state[k], want[k]) for k in want)
    pipe.load_lora_weights(folder)  # save -> load -> the same images, every time
    try:
        assert np.array_equal(render(pipe), tuned)
    finally:
        pipe.unload_lora_weights()
    assert np.allclose(render(pipe), base, atol=1e-6)


def test_checkpoints_differ_and_resume_loads_them_exactly(run_dir: Path, tiny_models: dict[str, Path]) -> None:
    from diffusers import UNet2DConditionModel

    mid, final = (load_file(str(run_dir / d / LORA_WEIGHT_NAME)) for d in ("checkpoint-2", "checkpoint-4"))
    assert any(not torch.equal(mid[k], final[k]) for k in mid)
    assert all(torch.equal(final[k], v) for k, v in load_file(str(run_dir / LORA_WEIGHT_NAME)).items())
    unet = UNet2DConditionModel.from_pretrained(tiny_models["sd"], subfolder="unet")
    add_lora(unet, rank=4, alpha=8)
    load_checkpoint_lora(unet, run_dir / "checkpoint-2")
    got = lora_state_dict(unet)
    want = diffusers_to_peft(mid)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.fixture(scope="module")
def legacy_checkpoint(run_dir: Path, tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An old-style checkpoint: peft-keyed ``lora_state.safetensors`` (what stock diffusers loads as nothing)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_models["sd"], subfolder="unet")
    add_lora(unet, rank=4, alpha=8)
    load_checkpoint_lora(unet, run_dir / "checkpoint-2")
    old_run = tmp_path_factory.mktemp("old-run")
    (old_run / "config.toml").write_text((run_dir / "config.toml").read_text())
    folder = old_run / "checkpoint-2"
    folder.mkdir()
    save_file(lora_state_dict(unet), str(folder / LEGACY_CHECKPOINT_LORA))
    return folder


def test_export_lora_converts_a_legacy_checkpoint(legacy_checkpoint: Path, run_dir: Path, pipe, tmp_path, capsys):
    out = tmp_path / "exported" / "korea-mpc.safetensors"
    assert export_main(["--checkpoint", str(legacy_checkpoint), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    tensors, adapter = read_lora_file(out)
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)  # alpha from the run's config.toml
    reference = load_file(str(run_dir / "checkpoint-2" / LORA_WEIGHT_NAME))
    assert tensors.keys() == reference.keys() and all(torch.equal(tensors[k], reference[k]) for k in reference)
    pipe.load_lora_weights(out.parent, weight_name=out.name)
    try:
        exported = render(pipe)
    finally:
        pipe.unload_lora_weights()
    pipe.load_lora_weights(run_dir / "checkpoint-2")
    try:
        assert np.array_equal(render(pipe), exported)
    finally:
        pipe.unload_lora_weights()
    # and a legacy checkpoint still resumes
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(Path(pipe.config._name_or_path) / "unet")
    add_lora(unet, rank=4, alpha=8)
    assert load_checkpoint_lora(unet, legacy_checkpoint).name == LEGACY_CHECKPOINT_LORA


def test_export_lora_needs_alpha_without_metadata_or_config(legacy_checkpoint: Path, tmp_path: Path, capsys) -> None:
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((legacy_checkpoint / LEGACY_CHECKPOINT_LORA).read_bytes())
    assert export_main(["--checkpoint", str(lone), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "--alpha" in err and str(lone) in err and len(err.strip().splitlines()) == 1
    export_lora(lone, tmp_path / "y.safetensors", alpha=4)
    assert read_lora_file(tmp_path / "y.safetensors")[1]["lora_alpha"] == 4
    assert export_main(["--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "z.safetensors")]) == 2
    assert "missing" in capsys.readouterr().err


def test_saved_file_metadata_is_what_save_lora_weights_writes(run_dir: Path) -> None:
    with safe_open(str(run_dir / LORA_WEIGHT_NAME), "pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "pt" and '"unet.r": 4' in meta["lora_adapter_metadata"]
