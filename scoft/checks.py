"""Checks that run before any model loads: the model folder, the output folder and every training image.

They import no torch/diffusers, so a wrong path or a corrupt image fails in about a second with one line that names
it, instead of a traceback minutes into a run. Every failure is a :class:`CheckError` (a ``ValueError``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from scoft.caption_check import require_generic_captions
from scoft.records import METADATA_FILE, Record, read_metadata, resolve_path

if TYPE_CHECKING:
    from scoft.config import TrainConfig

# subfolder -> (what it is, its config file(s): any one, weight file stems)
SD_PARTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "unet": ("UNet", ("config.json",), ("diffusion_pytorch_model",)),
    "vae": ("VAE", ("config.json",), ("diffusion_pytorch_model",)),
    "text_encoder": ("text encoder", ("config.json",), ("model", "pytorch_model")),
    "tokenizer": ("tokenizer", ("tokenizer_config.json", "tokenizer.json", "vocab.json"), ()),
    "scheduler": ("scheduler", ("scheduler_config.json",), ()),
}
WEIGHT_EXTENSIONS = (".safetensors", ".bin")
# what `scoft train` writes into its output folder (the only things --overwrite removes)
TRAIN_OUTPUTS = ("pytorch_lora_weights.safetensors", "train_log.csv", "config.toml", "logs", "validation")


class CheckError(ValueError):
    """A problem found before training: one line naming the file or folder and what to do."""


def weight_files(folder: Path, stems: Sequence[str], variant: str | None) -> list[Path]:
    """Weight files of a diffusers/transformers component for ``variant`` (``None``: the plain files)."""
    infix = f".{variant}" if variant else ""
    found = [folder / f"{stem}{infix}{ext}" for stem in stems for ext in WEIGHT_EXTENSIONS]
    found += [p for stem in stems for p in folder.glob(f"{stem}{infix}-*-of-*{WEIGHT_EXTENSIONS[0]}")]
    return [p for p in found if p.is_file()]


def weight_variants(folder: Path, stems: Sequence[str]) -> list[str]:
    """Variants (``fp16``, ...) a component folder holds weights for, besides the plain files."""
    variants = set()
    for stem in stems:
        for ext in WEIGHT_EXTENSIONS:
            for path in folder.glob(f"{stem}.*{ext}"):
                variants.add(path.name[len(stem) + 1 : -len(ext)].split("-")[0])
    return sorted(variants)


def check_model_folder(base: Path | str, variant: str | None = None, option: str = "--base") -> None:
    """An SD-1.x pipeline folder in diffusers layout with every part (and its weights in ``variant``)."""
    base = Path(base)
    if not base.is_dir():
        raise CheckError(f"{option} folder not found: {base}")
    if not (base / "model_index.json").is_file():
        raise CheckError(f"{option} {base} is not a diffusers pipeline folder (no model_index.json)")
    for sub, (what, configs, stems) in SD_PARTS.items():
        folder = base / sub
        if not any((folder / config).is_file() for config in configs):
            raise CheckError(f"{option} {base} has no {what} ({sub}/{configs[0]} missing)")
        if stems and not weight_files(folder, stems, variant):
            others = [v for v in weight_variants(folder, stems) if v != variant]
            label = f"{variant}-variant " if variant else ""
            hint = ""
            if others:
                hint = f"; it has {', '.join(others)}-variant weights: pass --weights-variant {others[0]}"
            elif variant:
                hint = "; it has plain weights: leave out --weights-variant"
            raise CheckError(f"{option} {base}: no {label}{what} weights in {folder}{hint}")


def check_folder(path: Path | str | None, option: str) -> None:
    if path is not None and not Path(path).is_dir():
        raise CheckError(f"{option} folder not found: {path}")


def check_out_folder(out: Path | str, *, resume: bool, overwrite: bool) -> None:
    """Refuse an output folder that already holds files unless the run continues it or starts it over."""
    out = Path(out)
    if resume and overwrite:
        raise CheckError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise CheckError(f"--out {out} is a file, not a folder")
    if resume or overwrite or not out.is_dir() or not any(out.iterdir()):
        return
    raise CheckError(
        f"--out {out} already holds files; pass --resume to continue that run or --overwrite to replace it"
    )


def clear_train_outputs(out: Path | str) -> list[Path]:
    """Remove what an earlier ``scoft train`` wrote into ``out`` (checkpoints, LoRA, log, config, validation
    images); other files are kept. Returns the removed paths."""
    out = Path(out)
    removed = [p for p in out.glob("checkpoint-*") if p.is_dir()]
    removed += [out / name for name in TRAIN_OUTPUTS if (out / name).exists()]
    for path in removed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed


def _decode(path: Path) -> str | None:
    """``None`` when the image decodes fully, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if min(img.size) < 1:
                return "empty image"
    except Exception as exc:  # PIL raises many exception types for bad data
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return None


def check_records(
    records: Sequence[Record], data_dir: Path, *, needs_blip: bool, needs_negatives: bool, variant: str = "m"
) -> None:
    """Fields every record needs for the variant; names the first offending line."""
    if not records:
        raise CheckError(f"no training records in {data_dir / METADATA_FILE}")
    for line, rec in enumerate(records, start=1):
        where = f"{data_dir / METADATA_FILE} record {line} ({rec.file_name})"
        if not rec.file_name.strip():
            raise CheckError(f"{data_dir / METADATA_FILE} record {line}: empty file_name")
        if not rec.text.strip():
            raise CheckError(f"{where}: empty text (the CCUB caption)")
    require_generic_captions(needs_blip, variant, records, data_dir)
    if needs_negatives and not any(rec.negative_imgpath for rec in records):
        raise CheckError(
            f"variant 'mpc' needs negatives, but no record in {data_dir / METADATA_FILE} has negative_imgpath; "
            "run `python -m scoft negatives` first or train variant 'mp'"
        )


def check_images(
    records: Sequence[Record], data_dir: Path, *, negatives: int | None, progress: bool = True, workers: int = 4
) -> int:
    """Every image and (the first ``negatives``, all with ``None``) negative exists and decodes; returns the count."""
    from tqdm.auto import tqdm

    paths: list[Path] = []
    for rec in records:
        names = rec.negative_imgpath if negatives is None else rec.negative_imgpath[:negatives]
        paths += [resolve_path(data_dir, name) for name in (rec.file_name, *names)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise CheckError(f"{len(missing)} image file(s) listed in {data_dir / METADATA_FILE} are missing: {missing[0]}")
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc="check images", unit="img", disable=not progress, leave=False) as bar,
    ):
        for path, reason in zip(paths, pool.map(_decode, paths), strict=True):
            bar.update(1)
            if reason is not None:
                raise CheckError(f"image {path} does not decode ({reason}); replace or remove it from {METADATA_FILE}")
    return len(paths)


def check_data(
    data_dir: Path | str,
    *,
    needs_blip: bool,
    needs_negatives: bool,
    negatives: int | None,
    progress: bool = True,
    variant: str = "m",
) -> list[Record]:
    """Read ``metadata.jsonl`` and run every record and image check; returns the records."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CheckError(f"--data folder not found: {data_dir}")
    try:
        records = read_metadata(data_dir)
    except FileNotFoundError as exc:
        raise CheckError(str(exc)) from None
    check_records(records, data_dir, needs_blip=needs_blip, needs_negatives=needs_negatives, variant=variant)
    check_images(records, data_dir, negatives=negatives if needs_negatives else 0, progress=progress)
    return records


def preflight(
    config: TrainConfig,
    base: Path | str,
    data_dir: Path | str,
    out: Path | str,
    *,
    backbone_dir: Path | str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    weights_variant: str | None = None,
    caption_with: Path | str | None = None,
    progress: bool = True,
) -> list[Record]:
    """Every check of a training run, in the order a user fixes them; with ``overwrite`` the old outputs go last."""
    check_model_folder(base, weights_variant)
    if config.distances_needed() and backbone_dir is None:
        raise CheckError(f"variant {config.variant!r} needs perceptual backbones: pass --backbone DIR")
    check_folder(backbone_dir, "--backbone")
    if config.uses_negatives and config.max_negatives < 1:
        raise CheckError("variant 'mpc' needs max_negatives >= 1")
    check_out_folder(out, resume=resume, overwrite=overwrite)
    if caption_with is not None and config.uses_memorization:
        check_folder(caption_with, "--caption-with")
        _caption_missing(Path(data_dir), Path(caption_with), progress)
    records = check_data(
        data_dir,
        needs_blip=config.uses_memorization,
        needs_negatives=config.uses_negatives,
        negatives=config.max_negatives,
        progress=progress,
        variant=config.variant,
    )
    if overwrite and Path(out).is_dir():
        clear_train_outputs(out)
    return records


def _caption_missing(data_dir: Path, captioner: Path, progress: bool) -> None:
    if all(rec.blip_text.strip() for rec in read_metadata(data_dir)):
        return
    from scoft.caption import caption_dataset, load_captioner

    model, processor = load_captioner(captioner)
    caption_dataset(data_dir, model, processor, progress=progress)
