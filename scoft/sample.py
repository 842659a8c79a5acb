"""``python -m scoft sample``: every image of a study design, reproducibly, listed in ``manifest.jsonl``.

One image per (culture, prompt, seed, model). Each image has its own CPU ``torch.Generator`` seeded with the
prompt's seed, so an image depends only on its (model, prompt, seed). On CPU the sampler also runs in a
batch-invariant mode (oneDNN and NNPACK convolutions off, timestep projections computed once per step, one VAE decode
per image), which makes the PNG bytes independent of the batch size and of the order of the work. Images already in
the manifest whose file and hash match are not sampled again. Several GPUs: ``accelerate launch -m scoft sample ...``
splits the work list; the main process merges the manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoft.cli import add_quiet, error
from scoft.files import atomic_write
from study_designs.schema import Design, DesignError, load_design

if TYPE_CHECKING:
    import torch
    from PIL import Image

MANIFEST = "manifest.jsonl"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
SCHEDULER = "DPMSolverMultistepScheduler"
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 4.5
DEFAULT_BATCH = 4


class SampleError(Exception):
    """Sampling cannot start; the message lists every problem."""


# --------------------------------------------------------------------------------------------------------------------
# The work list (pure)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One image to make: its identity (model, culture, prompt, seed) and the checkpoint paths that make it."""

    model_id: str
    culture: str
    prompt_id: str
    prompt: str
    seed: int
    base: str
    lora: str | None

    @property
    def file(self) -> str:
        """Path of the PNG relative to the output folder, named from (culture, prompt_id, seed, model_id)."""
        return f"{self.culture}/{self.prompt_id}_s{self.seed}_{self.model_id}.png"


def build_work(design: Design, base_override: str | None = None) -> list[WorkItem]:
    """Every (culture, prompt, seed, model) of ``design``, grouped so each base loads once and each (per-culture)
    LoRA once: sorted by base, LoRA (none first), model, culture, prompt, seed."""
    items = [
        WorkItem(
            model_id=m.id,
            culture=p.culture,
            prompt_id=p.id,
            prompt=p.text,
            seed=seed,
            base=base_override if base_override is not None else m.base_path(),
            lora=m.lora_path(p.culture),
        )
        for m in design.models
        for p in design.prompts
        for seed in p.seeds
    ]
    return sorted(items, key=lambda w: (w.base, w.lora or "", w.model_id, w.culture, w.prompt_id, w.seed))


def lora_file(path: str | Path) -> Path:
    """A LoRA given as a folder means its ``pytorch_lora_weights.safetensors``; a file is taken as it is."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path / LORA_WEIGHT_NAME


def unattached_message(path: Path) -> str:
    return (
        f"LoRA file {path} attaches no adapter to the UNet (keys are not diffusers 'unet.' keys); "
        "convert it with `python -m scoft export-lora --checkpoint DIR --out FILE`"
    )


def unattached_loras(work: Sequence[WorkItem]) -> list[Path]:
    """LoRA files whose keys name no UNet module the way diffusers' loaders look for them (e.g. peft-keyed files)."""
    from safetensors import safe_open

    from scoft.checkpoint import is_unet_keyed

    bad = []
    for lora in sorted({w.lora for w in work if w.lora is not None}):
        path = lora_file(lora)
        with safe_open(str(path), "pt") as fh:
            if not is_unet_keyed(list(fh.keys())):
                bad.append(path)
    return bad


@contextlib.contextmanager
def _without_text_encoder_notice() -> Iterator[None]:
    """Drop diffusers' "No LoRA keys associated to CLIPTextModel" notice (a UNet-only LoRA is the norm here)."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return "No LoRA keys associated to CLIPTextModel" not in record.getMessage()

    loggers = [logging.getLogger(n) for n in ("diffusers.loaders.lora_base", "diffusers.loaders.peft")]
    for logger in loggers:
        logger.addFilter(keep)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(keep)


def missing_paths(work: Sequence[WorkItem]) -> list[str]:
    """Every base pipeline folder and LoRA file the work needs that does not exist, each named once."""
    problems: list[str] = []
    for base in sorted({w.base for w in work}):
        if not (Path(base) / "model_index.json").is_file():
            problems.append(f"base pipeline not found: {base} (a diffusers folder with model_index.json)")
    for lora in sorted({w.lora for w in work if w.lora is not None}):
        if not lora_file(lora).is_file():
            users = sorted({w.model_id for w in work if w.lora == lora})
            problems.append(f"LoRA weights not found: {lora_file(lora)} (model {', '.join(users)})")
    return problems


def batches(work: Sequence[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    """Consecutive chunks of at most ``size`` items that share one (base, LoRA)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    for _, group in groupby(work, key=lambda w: (w.base, w.lora)):
        items = list(group)
        for i in range(0, len(items), size):
            yield items[i : i + size]


# --------------------------------------------------------------------------------------------------------------------
# Manifest records (pure)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    scheduler: str = SCHEDULER

    def as_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "steps": self.steps, "guidance": self.guidance}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_of(item: WorkItem, lora_hashes: dict[str, str]) -> dict[str, str | None]:
    return {"base": item.base, "lora_sha256": None if item.lora is None else lora_hashes[item.lora]}


def make_record(
    item: WorkItem,
    settings: Settings,
    checkpoint: dict[str, str | None],
    png_sha256: str,
    size: tuple[int, int],
    created_at: str,
) -> dict[str, Any]:
    """One manifest line in the DESIGN format; ``image_id`` is an opaque hash of the file name and its bytes."""
    image_id = "img_" + sha256_bytes(f"{item.file}\0{png_sha256}".encode())[:24]
    return {
        "image_id": image_id,
        "file": item.file,
        "sha256": png_sha256,
        "model_id": item.model_id,
        "culture": item.culture,
        "prompt_id": item.prompt_id,
        "prompt": item.prompt,
        "seed": item.seed,
        "width": size[0],
        "height": size[1],
        "sampler": settings.as_dict(),
        "checkpoint": checkpoint,
        "created_at": created_at,
    }


_IDENTITY = ("model_id", "culture", "prompt_id", "prompt", "seed")


def record_matches(record: dict[str, Any], item: WorkItem, settings: Settings, checkpoint: dict) -> bool:
    """The record describes this item made with these settings and this checkpoint (file bytes not checked)."""
    return (
        record.get("file") == item.file
        and all(record.get(k) == getattr(item, k) for k in _IDENTITY)
        and record.get("sampler") == settings.as_dict()
        and record.get("checkpoint") == checkpoint
    )


def read_records(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Records by file from manifest-like JSONL files (later files win); unreadable lines are ignored."""
    records: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("file"), str):
                records[rec["file"]] = rec
    return records


def split_done(
    work: Sequence[WorkItem],
    known: dict[str, dict[str, Any]],
    settings: Settings,
    lora_hashes: dict[str, str],
    out_dir: Path,
) -> tuple[dict[str, dict[str, Any]], list[WorkItem]]:
    """(records to keep, items to sample): an item is done when its record matches and the file hashes to it."""
    done: dict[str, dict[str, Any]] = {}
    todo: list[WorkItem] = []
    for item in work:
        rec = known.get(item.file)
        path = out_dir / item.file
        if (
            rec is not None
            and record_matches(rec, item, settings, checkpoint_of(item, lora_hashes))
            and path.is_file()
            and sha256_file(path) == rec.get("sha256")
        ):
            done[item.file] = rec
        else:
            todo.append(item)
    return done, todo


def manifest_text(work: Sequence[WorkItem], records: dict[str, dict[str, Any]]) -> str:
    """The manifest in work-list order, one JSON object per line."""
    return "".join(json.dumps(records[w.file], ensure_ascii=False) + "\n" for w in work if w.file in records)


def png_bytes(image: Image.Image) -> bytes:
    """PNG bytes with no ancillary text chunks (no metadata at all: a fresh image from the pixels)."""
    import numpy as np
    from PIL import Image

    clean = Image.fromarray(np.asarray(image.convert("RGB")))
    buf = io.BytesIO()
    clean.save(buf, format="PNG", pnginfo=None)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------------------------
# The pipeline edge
# --------------------------------------------------------------------------------------------------------------------


ROW_BLOCK = 8  # rows per sample that keep BLAS row blocks aligned with sample boundaries


def _row_invariant_linear(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``Linear`` whose result for one sample does not depend on the rest of the batch.

    BLAS kernels may treat a row differently depending on where it falls in the row blocks of the whole batch. 2-D
    inputs (the timestep embedding: identical rows within a step) are computed once when all rows agree, otherwise
    row by row; 3-D inputs whose token count is not a multiple of ``ROW_BLOCK`` (the 77 text states seen by the
    cross-attention keys and values) are computed one sample at a time; others in one call. The byte-identity tests
    of ``scoft sample`` check the result.
    """
    import torch
    import torch.nn.functional as F

    if x.shape[0] > 1 and (x.dim() == 2 or (x.dim() == 3 and x.shape[1] % ROW_BLOCK)):
        if x.dim() == 2 and bool((x == x[:1]).all()):
            return F.linear(x[:1], module.weight, module.bias).expand(x.shape[0], -1)
        rows = x.split(1)
        out: list[torch.Tensor] = []
        for i, row in enumerate(rows):
            if i and torch.equal(row, rows[i - 1]):  # the unconditional half, or one prompt with several seeds
                out.append(out[-1])
            else:
                out.append(F.linear(row, module.weight, module.bias))
        return torch.cat(out)
    return F.linear(x, module.weight, module.bias)


def make_batch_invariant(unet: torch.nn.Module) -> None:
    """Route the UNet's plain ``Linear`` layers through :func:`_row_invariant_linear`."""
    import torch

    for module in unet.modules():
        if type(module) is torch.nn.Linear:
            module.forward = functools.partial(_row_invariant_linear, module)


@contextlib.contextmanager
def batch_invariant_backends(enabled: bool) -> Iterator[None]:
    """On CPU: convolutions through PyTorch's own per-sample kernels instead of oneDNN / NNPACK, whose algorithm
    choice depends on the batch size."""
    import torch

    if not enabled:
        yield
        return
    with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
        yield


class Sampler:
    """Holds one base pipeline at a time and at most one LoRA on it."""

    def __init__(self, device: str, settings: Settings, *, exact: bool | None = None) -> None:
        import torch

        self.device = torch.device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.settings = settings
        self.exact = self.device.type == "cpu" if exact is None else exact
        self.pipe: Any = None
        self.base: str | None = None
        self.lora: str | None = None
        self._text_cache: dict[str, torch.Tensor] = {}

    def use(self, base: str, lora: str | None) -> None:
        if (base, lora) != (self.base, self.lora):
            self._text_cache.clear()
        if base != self.base:
            self._load_base(base)
        if lora != self.lora:
            if self.lora is not None:
                self.pipe.unload_lora_weights()
                self.lora = None
            if lora is not None:
                path = lora_file(lora)
                try:
                    with _without_text_encoder_notice():  # a UNet-only LoRA is normal; every other warning shows
                        self.pipe.load_lora_weights(str(path.parent), weight_name=path.name)
                except (ValueError, KeyError, IndexError, RuntimeError) as exc:
                    self.pipe.unload_lora_weights()
                    detail = " ".join(str(exc).split())[:300]
                    raise SampleError(f"LoRA file {path} could not be loaded: {type(exc).__name__}: {detail}") from None
                if not self.pipe.get_list_adapters().get("unet"):
                    self.pipe.unload_lora_weights()
                    raise SampleError(unattached_message(path))
                if self.exact:
                    make_batch_invariant(self.pipe.unet)  # the adapter's own layers too
                self.lora = lora

    def _load_base(self, base: str) -> None:
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

        self.pipe = None
        pipe = StableDiffusionPipeline.from_pretrained(
            base, torch_dtype=self.dtype, safety_checker=None, requires_safety_checker=False
        )
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        if self.exact:
            make_batch_invariant(pipe.unet)
        self.pipe = pipe.to(self.device)
        self.base, self.lora = base, None

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Text states of each prompt, encoded one prompt at a time (so they do not depend on the batch) and cached
        while the base and LoRA stay, and the empty prompt's states repeated for classifier-free guidance."""
        import torch

        for text in {"", *prompts} - self._text_cache.keys():
            self._text_cache[text] = self.pipe.encode_prompt(text, self.device, 1, False)[0]
        cond = torch.cat([self._text_cache[p] for p in prompts])
        return cond, self._text_cache[""].expand_as(cond).contiguous()

    def denoise(self, items: Sequence[WorkItem]) -> torch.Tensor:
        """Final latents for ``items`` (all on the current base and LoRA), one generator per image."""
        import torch

        generators = [torch.Generator("cpu").manual_seed(w.seed) for w in items]
        with batch_invariant_backends(self.exact and self.device.type == "cpu"), torch.inference_mode():
            cond, uncond = self.encode([w.prompt for w in items])
            return self.pipe(
                prompt_embeds=cond,
                negative_prompt_embeds=uncond,
                generator=generators,
                num_inference_steps=self.settings.steps,
                guidance_scale=self.settings.guidance,
                output_type="latent",
            ).images

    def generate(self, items: Sequence[WorkItem]) -> list[Image.Image]:
        """Images for ``items`` (all on the current base and LoRA)."""
        import torch

        pipe = self.pipe
        latents = self.denoise(items)
        with torch.inference_mode():  # one image per decode is always the same shape, so any kernels will do
            scale = pipe.vae.config.scaling_factor
            if self.exact:
                decoded = torch.cat([pipe.vae.decode(z[None] / scale, return_dict=False)[0] for z in latents])
            else:
                decoded = pipe.vae.decode(latents / scale, return_dict=False)[0]
            return pipe.image_processor.postprocess(decoded.float(), output_type="pil")


# --------------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleResult:
    manifest: Path
    n_images: int
    n_sampled: int
    n_reused: int
    main_process: bool = True


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run(
    design: Design,
    out_dir: str | Path,
    *,
    base: str | None = None,
    settings: Settings = Settings(),
    batch_size: int = DEFAULT_BATCH,
    device: str | None = None,
    exact: bool | None = None,
    progress: bool = True,
    now: Callable[[], str] = _now,
) -> SampleResult:
    """Sample every missing image of ``design`` into ``out_dir`` and rewrite ``out_dir/manifest.jsonl``."""
    from accelerate import PartialState
    from tqdm import tqdm

    if batch_size < 1:
        raise SampleError("--batch-size must be >= 1")
    if settings.steps < 1:
        raise SampleError("--steps must be >= 1")
    out_dir = Path(out_dir)
    work = build_work(design, base)
    problems = missing_paths(work)
    if problems:
        raise SampleError(f"{len(problems)} missing checkpoint path(s), nothing sampled:\n  " + "\n  ".join(problems))
    unattached = unattached_loras(work)
    if unattached:
        more = f" (and {len(unattached) - 1} more)" if len(unattached) > 1 else ""
        raise SampleError(unattached_message(unattached[0]) + more)
    lora_hashes = {lora: sha256_file(lora_file(lora)) for lora in {w.lora for w in work if w.lora is not None}}

    state = PartialState()
    manifest = out_dir / MANIFEST
    parts = sorted(out_dir.glob(f".{MANIFEST}.part*"))
    known = read_records([manifest, *parts])
    done, todo = split_done(work, known, settings, lora_hashes, out_dir)
    state.wait_for_everyone()
    if state.is_main_process:
        atomic_write(manifest, manifest_text(work, done).encode("utf-8"))
        for part in parts:
            part.unlink(missing_ok=True)
    state.wait_for_everyone()

    part_file = out_dir / f".{MANIFEST}.part{state.process_index}"
    sampler = Sampler(device or str(state.device), settings, exact=exact)
    with state.split_between_processes(todo) as mine:
        bar = tqdm(
            total=len(mine),
            desc=f"sampling{f' [{state.process_index}]' if state.num_processes > 1 else ''}",
            unit="img",
            position=state.process_index,
            disable=not progress,
        )
        for chunk in batches(mine, batch_size):
            sampler.use(chunk[0].base, chunk[0].lora)
            images = sampler.generate(chunk)
            lines = []
            for item, image in zip(chunk, images, strict=True):
                data = png_bytes(image)
                atomic_write(out_dir / item.file, data)
                rec = make_record(
                    item, settings, checkpoint_of(item, lora_hashes), sha256_bytes(data), image.size, now()
                )
                lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
            part_file.parent.mkdir(parents=True, exist_ok=True)
            with part_file.open("a", encoding="utf-8") as fh:
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())
            bar.update(len(chunk))
        bar.close()
    state.wait_for_everyone()
    if state.is_main_process:
        parts = sorted(out_dir.glob(f".{MANIFEST}.part*"))
        records = {**done, **read_records(parts)}
        atomic_write(manifest, manifest_text(work, records).encode("utf-8"))
        for part in parts:
            part.unlink(missing_ok=True)
    state.wait_for_everyone()
    return SampleResult(manifest, len(work), len(todo), len(done), state.is_main_process)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoft sample", description="Sample every image of a study design.")
    p.add_argument("--design", type=Path, required=True, help="study design TOML")
    p.add_argument("--out", type=Path, required=True, help="output folder (PNGs and manifest.jsonl)")
    p.add_argument("--base", help="base pipeline folder for every model (overrides the design's base)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"denoising steps (default {DEFAULT_STEPS})")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE, help=f"CFG scale (default {DEFAULT_GUIDANCE})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"prompts per batch (default {DEFAULT_BATCH})")
    p.add_argument("--device", help="torch device (default: this process's accelerator, else cpu)")
    p.add_argument(
        "--fast-kernels",
        action="store_true",
        help="on CPU, use oneDNN convolutions (faster; PNG bytes may then depend on the batch size)",
    )
    add_quiet(p, "hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        design = load_design(args.design)
        result = run(
            design,
            args.out,
            base=args.base,
            settings=Settings(steps=args.steps, guidance=args.guidance),
            batch_size=args.batch_size,
            device=args.device,
            exact=False if args.fast_kernels else None,
            progress=not args.quiet,
        )
    except (DesignError, SampleError) as err:
        return error("python -m scoft sample", err)
    if result.main_process:
        counts = f"{result.n_sampled} sampled, {result.n_reused} already done"
        print(f"{result.manifest}: {result.n_images} images ({counts})")
    return 0
