"""Validation images during training: fixed prompts x fixed seeds through the LoRA being trained, as one grid PNG.

``OUT/validation/step-{N:06d}.png`` has one row per prompt and one column per seed; the same (prompt, seed) cell is
comparable across steps. Sampling uses DPM-Solver multistep with guidance, as the authors' inference did, on the
in-memory models (nothing is reloaded) and does not touch the training generators.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from PIL import Image

VALIDATION_DIR = "validation"


def validation_prompts(config: Any, records: Sequence[Any]) -> list[str]:
    """The config's prompts, or the first training caption when it names none."""
    if config.validation_prompts:
        return list(config.validation_prompts)
    return [records[0].text] if records else []


def image_grid(images: Sequence[Image.Image], rows: int, cols: int) -> Image.Image:
    """``rows`` x ``cols`` images (row-major) pasted into one image."""
    from PIL import Image

    if len(images) != rows * cols or not images:
        raise ValueError(f"a {rows} x {cols} grid needs {rows * cols} images, got {len(images)}")
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h))
    for i, image in enumerate(images):
        grid.paste(image, ((i % cols) * w, (i // cols) * h))
    return grid


def validation_pipeline(models: Any, unet: torch.nn.Module) -> Any:
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=models.tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler.from_config(models.noise_scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_validation(
    models: Any,
    unet: torch.nn.Module,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int,
    guidance_scale: float,
    resolution: int,
    autocast: Any = None,
) -> Image.Image:
    """The grid of ``prompts`` x ``seeds``; the UNet is put back in its training mode afterwards."""
    from contextlib import nullcontext

    pipe = validation_pipeline(models, unet)
    was_training = unet.training
    unet.eval()
    images = []
    try:
        with torch.no_grad(), autocast if autocast is not None else nullcontext():
            for prompt in prompts:
                for seed in seeds:
                    images += pipe(
                        prompt,
                        num_inference_steps=steps,
                        guidance_scale=guidance_scale,
                        height=resolution,
                        width=resolution,
                        generator=torch.Generator("cpu").manual_seed(seed),
                    ).images
    finally:
        unet.train(was_training)
    return image_grid(images, len(prompts), len(seeds))


def save_grid(grid: Image.Image, out: Path, step: int) -> Path:
    import io

    from scoft.files import atomic_write

    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    return atomic_write(Path(out) / VALIDATION_DIR / f"step-{step:06d}.png", buffer.getvalue())
