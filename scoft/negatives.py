"""``python -m scoft negatives``: the guided negative set of a CCUB folder.

For every image of ``DATA/metadata.jsonl``: the square training sees (shorter side resized, centre crop: the crop
``scoft train`` uses), a depth map of it from a local transformers depth model, then K images from the
frozen base model steered by a ControlNet-depth and prompted with the image's caption: the base model's own rendering
of the same layout. They are written to ``DATA/negatives/{stem}_{k}.png`` and listed in the record's
``negative_imgpath``. Each negative has its own generator, seeded from (seed, file name, k), so which images were
already done does not change the others; finished images are skipped on a re-run.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoft.cli import add_quiet, error
from scoft.images import training_crop
from scoft.records import Record, read_metadata, resolve_path, write_metadata

if TYPE_CHECKING:
    import torch
    from PIL import Image

NEGATIVES_DIR = "negatives"
DEFAULT_K = 3
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 7.5
DEFAULT_SEED = 1024


@dataclass(frozen=True, slots=True)
class Job:
    """One negative to make: record index, k, the file it goes to (relative to the data folder) and its seed."""

    index: int
    k: int
    file: str
    seed: int
    prompt: str


def negative_seed(seed: int, file_name: str, k: int) -> int:
    """A 63-bit seed that depends only on (seed, file name, k)."""
    digest = hashlib.sha256(f"{seed}\0{file_name}\0{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def negative_paths(file_name: str, k: int) -> list[str]:
    """Where the K negatives of ``file_name`` go, relative to the data folder."""
    stem = Path(file_name).stem
    return [f"{NEGATIVES_DIR}/{stem}_{i}.png" for i in range(k)]


def prompt_of(record: Record, field: str) -> str:
    text = getattr(record, field)
    return text or record.text


def plan(
    records: Sequence[Record], data_dir: Path, *, k: int, seed: int, prompt_field: str
) -> tuple[list[Record], list[Job]]:
    """(records with their negatives listed where all K files exist, jobs for the missing ones). Pure except for
    checking which files exist."""
    stems = [Path(r.file_name).stem for r in records]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"image file names must have distinct stems to name their negatives; repeated: {dup[:5]}")
    updated: list[Record] = []
    jobs: list[Job] = []
    for index, record in enumerate(records):
        paths = negative_paths(record.file_name, k)
        missing = [i for i, p in enumerate(paths) if not (data_dir / p).is_file()]
        if not missing:
            record = replace(record, negative_imgpath=tuple(paths))
        jobs += [
            Job(index, i, paths[i], negative_seed(seed, record.file_name, i), prompt_of(record, prompt_field))
            for i in missing
        ]
        updated.append(record)
    return updated, jobs


def check_model_folders(base: str | Path, controlnet: str | Path, depth: str | Path) -> None:
    """One-line errors for a missing or wrong model folder, before anything loads."""
    from scoft.checks import CheckError, check_folder, check_model_folder, weight_files

    for name, path in (("base", base), ("controlnet", controlnet), ("depth", depth)):
        check_folder(path, f"--{name}")
    check_model_folder(base)
    net = Path(controlnet)
    if not (net / "config.json").is_file() or not weight_files(net, ("diffusion_pytorch_model",), None):
        raise CheckError(f"--controlnet {net} is not a ControlNet folder (config.json and diffusion_pytorch_model.*)")
    dep = Path(depth)
    if not (dep / "config.json").is_file() or not (dep / "preprocessor_config.json").is_file():
        raise CheckError(
            f"--depth {dep} is not a depth-estimation model folder (transformers layout: config.json and "
            "preprocessor_config.json)"
        )
    if "depth" not in (dep / "config.json").read_text(encoding="utf-8", errors="replace").lower():
        raise CheckError(f"--depth {dep}: its config.json names no depth-estimation model (e.g. DPT, Depth-Anything)")


def depth_to_control(depth: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """A depth map (H, W) resized to ``size`` (width, height), scaled to 0..255 per image, as a 3-channel image."""
    import numpy as np
    import torch
    from PIL import Image

    d = torch.nn.functional.interpolate(
        depth[None, None].float(), size=(size[1], size[0]), mode="bicubic", align_corners=False
    )[0, 0]
    lo, hi = float(d.min()), float(d.max())
    d = (d - lo) / (hi - lo) if hi > lo else torch.zeros_like(d)
    arr = (d.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.stack([arr] * 3, axis=-1))


class DepthEstimator:
    def __init__(self, path: str | Path, device: torch.device) -> None:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.processor = AutoImageProcessor.from_pretrained(path)
        self.model = AutoModelForDepthEstimation.from_pretrained(path).to(device).eval()
        self.device = device

    def control_image(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        import torch

        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            depth = self.model(**inputs).predicted_depth[0]
        return depth_to_control(depth, size)


def load_controlnet_pipeline(base: str | Path, controlnet: str | Path, device: torch.device) -> Any:
    """The frozen base model with a ControlNet, DPM-Solver multistep, fp16 on GPU."""
    import torch
    from diffusers import ControlNetModel, DPMSolverMultistepScheduler, StableDiffusionControlNetPipeline

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    net = ControlNetModel.from_pretrained(controlnet, dtype=dtype)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        base, controlnet=net, dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def make_negatives(
    data_dir: str | Path,
    *,
    base: str | Path,
    controlnet: str | Path,
    depth: str | Path,
    k: int = DEFAULT_K,
    seed: int = DEFAULT_SEED,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    prompt_field: str = "text",
    batch_size: int = 4,
    device: str | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Make the missing negatives of ``data_dir`` and list them in its metadata; returns (images made, records)."""
    import torch
    from PIL import Image
    from tqdm import tqdm

    from scoft.files import atomic_write
    from scoft.sample import png_bytes

    if k < 1 or steps < 1 or batch_size < 1:
        raise ValueError("--k, --steps and --batch-size must be >= 1")
    if prompt_field not in ("text", "blip_text"):
        raise ValueError("--prompt-field must be text or blip_text")
    data_dir = Path(data_dir)
    check_model_folders(base, controlnet, depth)
    records = read_metadata(data_dir)
    missing = [r.file_name for r in records if not resolve_path(data_dir, r.file_name).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) listed in metadata.jsonl not found, e.g. {missing[:3]}")
    records, jobs = plan(records, data_dir, k=k, seed=seed, prompt_field=prompt_field)
    write_metadata(data_dir, records)
    if not jobs:
        return 0, len(records)

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    pipe = load_controlnet_pipeline(base, controlnet, dev)
    size = (pipe.unet.config.sample_size * pipe.vae_scale_factor,) * 2
    estimator = DepthEstimator(depth, dev)
    controls: dict[int, Image.Image] = {}
    remaining = {i: sum(j.index == i for j in jobs) for i in {j.index for j in jobs}}
    bar = tqdm(total=len(jobs), desc="negatives", unit="img", disable=not progress)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        for job in chunk:
            if job.index not in controls:
                with Image.open(resolve_path(data_dir, records[job.index].file_name)) as im:
                    controls[job.index] = estimator.control_image(training_crop(im, size[0]), size)
        with torch.inference_mode():
            images = pipe(
                prompt=[j.prompt for j in chunk],
                image=[controls[j.index] for j in chunk],
                generator=[torch.Generator("cpu").manual_seed(j.seed) for j in chunk],
                num_inference_steps=steps,
                guidance_scale=guidance,
                height=size[1],
                width=size[0],
            ).images
        finished = []
        for job, image in zip(chunk, images, strict=True):
            atomic_write(data_dir / job.file, png_bytes(image))
            remaining[job.index] -= 1
            if remaining[job.index] == 0:
                finished.append(job.index)
                controls.pop(job.index, None)
        for index in finished:
            records[index] = replace(
                records[index], negative_imgpath=tuple(negative_paths(records[index].file_name, k))
            )
        if finished:
            write_metadata(data_dir, records)
        bar.update(len(chunk))
    bar.close()
    return len(jobs), len(records)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoft negatives", description="Make depth-guided negatives.")
    p.add_argument("--base", type=Path, required=True, help="SD-1.x pipeline folder (diffusers layout)")
    p.add_argument("--controlnet", type=Path, required=True, help="ControlNet-depth folder (diffusers layout)")
    p.add_argument("--depth", type=Path, required=True, help="depth-estimation model folder (transformers layout)")
    p.add_argument("--data", type=Path, required=True, help="folder with metadata.jsonl and the images")
    p.add_argument("--k", type=int, default=DEFAULT_K, help=f"negatives per image (default {DEFAULT_K})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"denoising steps (default {DEFAULT_STEPS})")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE, help=f"CFG (default {DEFAULT_GUIDANCE})")
    p.add_argument("--prompt-field", choices=("text", "blip_text"), default="text", help="caption to prompt with")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch (default 4)")
    p.add_argument("--device", help="torch device (default cuda if available, else cpu)")
    add_quiet(p, "hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        made, n = make_negatives(
            args.data,
            base=args.base,
            controlnet=args.controlnet,
            depth=args.depth,
            k=args.k,
            seed=args.seed,
            steps=args.steps,
            guidance=args.guidance,
            prompt_field=args.prompt_field,
            batch_size=args.batch_size,
            device=args.device,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as err:
        return error("python -m scoft negatives", err)
    print(f"{args.data}: {made} negatives made, {n} images listed")
    return 0
