"""The tiny offline models build from configs, load with stock from_pretrained and run on CPU."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scoft import tiny


def _rgb(h: int = 50, w: int = 70, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_build_returns_every_part(tiny_models: dict[str, Path]) -> None:
    assert set(tiny_models) == set(tiny.PARTS)
    assert (tiny_models["sd"] / "model_index.json").is_file()
    assert (tiny_models["backbone"] / "vgg16.safetensors").is_file()


def test_sd_pipeline_generates_64px_quickly_and_deterministically(tiny_models: dict[str, Path]) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 8
    assert pipe.tokenizer.model_max_length == 77
    pipe("warm up", num_inference_steps=1, output_type="np")

    def run(prompt: str, seed: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(seed)
        return pipe(prompt, num_inference_steps=4, generator=gen, output_type="np").images[0]

    start = time.perf_counter()
    a = run("a red temple", 0)
    elapsed = time.perf_counter() - start
    assert a.shape == (64, 64, 3)
    assert elapsed < 2.0, f"tiny pipeline took {elapsed:.2f} s"
    np.testing.assert_array_equal(a, run("a red temple", 0))
    assert not np.array_equal(a, run("a red temple", 1))


def test_vae_latents_are_image_over_8(tiny_models: dict[str, Path]) -> None:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_models["sd"], subfolder="vae")
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)
    assert vae.config.scaling_factor == pytest.approx(0.18215)


def test_clip_tokenizer_is_byte_level(tiny_models: dict[str, Path]) -> None:
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(tiny_models["sd"], subfolder="tokenizer")
    assert len(tok) == 514
    ids = tok("Mole poblano de México", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True).strip() == "mole poblano de méxico"


def test_controlnet_pipeline_runs(tiny_models: dict[str, Path]) -> None:
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    controlnet = ControlNetModel.from_pretrained(tiny_models["controlnet"])
    pipe = StableDiffusionControlNetPipeline(**base.components, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    depth = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))).convert("RGB")
    out = pipe("a street", image=depth, num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 64, 64, 3)


def test_depth_model_runs_on_pil_image(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(tiny_models["depth"])
    processor = AutoImageProcessor.from_pretrained(tiny_models["depth"])
    with torch.no_grad():
        out = model(**processor(images=_rgb(), return_tensors="pt"))
    depth = processor.post_process_depth_estimation(out, target_sizes=[(50, 70)])[0]["predicted_depth"]
    assert depth.shape == (50, 70)
    assert torch.isfinite(depth).all()


def test_captioner_generates_text(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoProcessor, BlipForConditionalGeneration

    model = BlipForConditionalGeneration.from_pretrained(tiny_models["captioner"])
    processor = AutoProcessor.from_pretrained(tiny_models["captioner"])
    inputs = processor(images=[_rgb(seed=1), _rgb(seed=2)], return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=8)
    texts = processor.batch_decode(ids, skip_special_tokens=True)
    assert len(texts) == 2
    assert all(isinstance(t, str) and t.strip() for t in texts)


def test_perceptual_backbones_load(tiny_models: dict[str, Path]) -> None:
    from safetensors.torch import load_file
    from transformers import AutoImageProcessor, CLIPVisionModelWithProjection, ViTModel

    root = tiny_models["backbone"]
    state = load_file(root / "vgg16.safetensors")
    conv_indices = sorted(int(k.split(".")[1]) for k in state if k.endswith(".weight"))
    assert conv_indices == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert state["features.0.weight"].shape == (8, 3, 3, 3)
    assert state["features.28.weight"].shape == (64, 64, 3, 3)

    clip = CLIPVisionModelWithProjection.from_pretrained(root / "clip")
    clip_proc = AutoImageProcessor.from_pretrained(root / "clip")
    dino = ViTModel.from_pretrained(root / "dino")
    dino_proc = AutoImageProcessor.from_pretrained(root / "dino")
    with torch.no_grad():
        emb = clip(**clip_proc(images=_rgb(), return_tensors="pt")).image_embeds
        hidden = dino(**dino_proc(images=_rgb(), return_tensors="pt")).last_hidden_state
    assert emb.shape == (1, clip.config.projection_dim)
    assert hidden.shape[0] == 1 and hidden.shape[-1] == dino.config.hidden_size


def test_existing_parts_are_kept_and_seed_is_reproducible(tmp_path: Path) -> None:
    first = tiny.build_tiny(tmp_path / "a", seed=3, parts=("backbone",))
    weights = first["backbone"] / "vgg16.safetensors"
    stamp = weights.stat().st_mtime_ns
    tiny.build_tiny(tmp_path / "a", seed=3, parts=("backbone",))
    assert weights.stat().st_mtime_ns == stamp
    again = tiny.build_tiny(tmp_path / "b", seed=3, parts=("backbone",))
    assert (again["backbone"] / "vgg16.safetensors").read_bytes() == weights.read_bytes()
    assert (again["backbone"] / "clip" / "model.safetensors").read_bytes() == (
        first["backbone"] / "clip" / "model.safetensors"
    ).read_bytes()


def test_unknown_part_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model parts"):
        tiny.build_tiny(tmp_path, parts=("sd", "nope"))


def test_cli_builds_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scoft.__main__ import main

    assert main(["tiny", "--out", str(tmp_path), "--parts", "depth"]) == 0
    assert (tmp_path / "depth" / "config.json").is_file()
    assert "depth" in capsys.readouterr().out
    assert not (tmp_path / "sd").exists()
