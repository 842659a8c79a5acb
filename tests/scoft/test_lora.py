"""LoRA on the UNet attention projections: state round trip and a file that stock diffusers loads."""

from pathlib import Path

import numpy as np
import pytest
import torch

from scoft.lora import LORA_WEIGHT_NAME, add_lora, lora_state_dict, save_lora, set_lora_state_dict


@pytest.fixture
def unet(tiny_models: dict[str, Path]):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(tiny_models["sd"], subfolder="unet")


def test_add_lora_targets_attention_projections_and_freezes_the_rest(unet) -> None:
    params = add_lora(unet, rank=4, alpha=8)
    names = [n for n, p in unet.named_parameters() if p.requires_grad]
    assert len(names) == len(params) > 0
    assert all(".lora_A." in n or ".lora_B." in n for n in names)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert targets == {"to_q", "to_k", "to_v", "0"}  # to_out.0
    assert all(p.dtype == torch.float32 for p in params)
    a = next(p for n, p in unet.named_parameters() if n.endswith("to_q.lora_A.default.weight"))
    assert a.shape[0] == 4


def test_add_lora_rejects_unknown_targets(unet) -> None:
    with pytest.raises(ValueError):
        add_lora(unet, rank=2, target_modules=("no_such_layer",))


def test_lora_state_round_trip(unet) -> None:
    add_lora(unet, rank=2)
    state = {k: torch.randn_like(v) for k, v in lora_state_dict(unet).items()}
    set_lora_state_dict(unet, state)
    again = lora_state_dict(unet)
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    with pytest.raises(ValueError, match="does not match"):
        set_lora_state_dict(unet, {"nonsense.lora_A.weight": torch.zeros(1)})


def test_saved_lora_changes_a_stock_pipeline_and_unload_restores_it(unet, tiny_models, tmp_path) -> None:
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    add_lora(unet, rank=4, alpha=4)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    path = save_lora(unet, tmp_path)
    assert path == tmp_path / LORA_WEIGHT_NAME
    keys = list(load_file(str(path)))
    assert keys and all(k.startswith("unet.") for k in keys)

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    pipe.set_progress_bar_config(disable=True)

    def render() -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        return pipe("a photo", num_inference_steps=2, generator=gen, output_type="np").images

    base = render()
    pipe.load_lora_weights(tmp_path)
    tuned = render()
    assert np.abs(tuned - base).max() > 1e-3
    pipe.unload_lora_weights()
    assert np.allclose(render(), base, atol=1e-6)
