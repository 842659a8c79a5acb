"""``python -m scoft caption --captioner DIR --data DIR``: fill ``blip_text`` with a local captioning model."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoft.cli import error
from scoft.images import to_rgb
from scoft.records import METADATA_FILE, read_metadata, resolve_path, write_metadata

if TYPE_CHECKING:
    import torch
    from PIL import Image


def load_captioner(path: Path | str, *, device: str = "cpu", dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Load a local image-to-text model (BLIP, BLIP-2, GIT, ...) and its processor, in eval mode."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no captioning model at {path} (expected a transformers folder with config.json)")
    processor = AutoProcessor.from_pretrained(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    return model.to(device).eval(), processor


def caption_images(model: Any, processor: Any, images: Sequence[Image.Image], *, max_new_tokens: int = 30) -> list[str]:
    """Generic captions of ``images`` (one string each, whitespace-normalised)."""
    import torch

    inputs = processor(images=list(images), return_tensors="pt")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    return [" ".join(text.split()) for text in processor.batch_decode(ids, skip_special_tokens=True)]


def caption_dataset(
    data_dir: Path | str,
    model: Any,
    processor: Any,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 30,
    force: bool = False,
    progress: bool = True,
) -> int:
    """Fill ``blip_text`` of the records that lack it (all with ``force``); metadata is rewritten after every batch.

    Returns the number of records captioned.
    """
    from PIL import Image
    from tqdm import tqdm

    data_dir = Path(data_dir)
    records = read_metadata(data_dir)
    todo = [i for i, rec in enumerate(records) if force or not rec.blip_text.strip()]
    with tqdm(total=len(todo), desc="caption", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images = []
            for i in batch:
                with Image.open(resolve_path(data_dir, records[i].file_name)) as img:
                    images.append(to_rgb(img))
            texts = caption_images(model, processor, images, max_new_tokens=max_new_tokens)
            for i, text in zip(batch, texts, strict=True):
                records[i] = dataclasses.replace(records[i], blip_text=text)
            write_metadata(data_dir, records)
            bar.update(len(batch))
    return len(todo)


def caption_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoft caption", description="Fill blip_text in metadata.jsonl with a local captioning model."
    )
    parser.add_argument("--captioner", type=Path, required=True, help="local transformers image-to-text folder")
    parser.add_argument("--data", type=Path, required=True, help="data folder with metadata.jsonl")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cpu")
    parser.add_argument("--fp16", action="store_true", help="run the captioner in half precision")
    parser.add_argument("--max-new-tokens", type=int, default=30, help="longest caption in tokens (default 30)")
    parser.add_argument("--force", action="store_true", help="re-caption records that already have blip_text")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.max_new_tokens < 1:
        parser.error("--batch-size and --max-new-tokens must be >= 1")
    try:
        import torch

        model, processor = load_captioner(
            args.captioner, device=args.device, dtype=torch.float16 if args.fp16 else None
        )
        count = caption_dataset(
            args.data,
            model,
            processor,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            force=args.force,
        )
    except (FileNotFoundError, ValueError) as exc:
        return error(parser.prog, exc)
    print(f"captioned {count} images in {args.data / METADATA_FILE}")
    return 0
