"""``python -m app.placeholder --design F --out DIR``: labelled placeholder drawings and a manifest for a design.

Stands in for ``python -m scoft sample`` where no model is available: one PNG per (page, model), visibly marked
as a placeholder, and ``DIR/manifest.jsonl`` in the DESIGN format. Drawings never show the model's id or label.
Re-running keeps an up-to-date output as it is (same bytes, same manifest), so a launched round can be reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from study_designs.schema import Design, DesignError, load_design

SIZE = 256
PALETTE = [(214, 96, 77), (67, 147, 195), (120, 180, 90), (170, 110, 190), (230, 170, 60), (90, 90, 90)]


def image_id(design: Design, page: str, model: str) -> str:
    return hashlib.sha256(f"{design.id}\x1f{page}\x1f{model}".encode()).hexdigest()[:20]


def draw(text: str, variant: int, size: int = SIZE) -> Image.Image:
    """A placeholder drawing: a coloured field with ``variant + 1`` shapes, the prompt text and a clear label."""
    colour = PALETTE[variant % len(PALETTE)]
    im = Image.new("RGB", (size, size), tuple(c // 3 + 150 for c in colour))
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=max(10, size // 18))
    big = ImageFont.load_default(size=max(12, size // 10))
    for k in range(variant + 1):
        x0 = size // 8 + k * size // 6
        d.ellipse([x0, size // 2, x0 + size // 7, size // 2 + size // 7], fill=colour, outline=(0, 0, 0))
    d.rectangle([0, 0, size, size // 6], fill=(30, 30, 30))
    d.text((size // 5, size // 40), "PLACEHOLDER", fill=(255, 220, 0), font=big)
    lines = textwrap.wrap(text, width=28)[:3]
    for n, line in enumerate(lines):
        d.text((size // 20, size // 5 + n * size // 14), line, fill=(0, 0, 0), font=font)
    return im


def manifest_entries(design: Design, size: int = SIZE) -> list[tuple[dict, Image.Image]]:
    out = []
    for page in design.pages():
        for variant, model in enumerate(design.models):
            rel = f"{page.culture}/{page.prompt_id}-{page.seed}-{model.id}.png"
            entry = {
                "image_id": image_id(design, page.id, model.id),
                "file": rel,
                "model_id": model.id,
                "culture": page.culture,
                "prompt_id": page.prompt_id,
                "prompt": page.text,
                "seed": page.seed,
                "width": size,
                "height": size,
                "sampler": {"scheduler": "placeholder", "steps": 0, "guidance": 0.0},
                "checkpoint": {"base": "placeholder", "lora_sha256": None},
            }
            out.append((entry, draw(page.text, variant, size)))
    return out


def _up_to_date(out: Path, expected: list[str]) -> bool:
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        return False
    try:
        entries = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError:
        return False
    if sorted(e.get("image_id", "") for e in entries) != sorted(expected):
        return False
    for e in entries:
        f = out / e["file"]
        if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != e.get("sha256"):
            return False
    return True


def write_placeholders(design: Design, out: Path, *, size: int = SIZE, force: bool = False) -> tuple[Path, bool]:
    """Write the images and ``manifest.jsonl``; returns (manifest path, whether anything was written)."""
    pairs = manifest_entries(design, size)
    manifest = out / "manifest.jsonl"
    if not force and _up_to_date(out, [e["image_id"] for e, _ in pairs]):
        return manifest, False
    created = datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for entry, im in pairs:
        path = out / entry["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, format="PNG")
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        entry["created_at"] = created
        lines.append(json.dumps(entry, sort_keys=True))
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.placeholder", description=__doc__.splitlines()[0])
    parser.add_argument("--design", required=True, help="study design TOML")
    parser.add_argument("--out", required=True, help="folder for the images and manifest.jsonl")
    parser.add_argument("--size", type=int, default=SIZE, help="image width and height in pixels")
    parser.add_argument("--force", action="store_true", help="redraw even if the output is up to date")
    args = parser.parse_args(argv)
    try:
        design = load_design(args.design)
    except DesignError as err:
        print(f"python -m app.placeholder: error: {err}", file=sys.stderr)
        return 2
    manifest, wrote = write_placeholders(design, Path(args.out), size=args.size, force=args.force)
    n = len(design.pages()) * len(design.models)
    print(f"{'wrote' if wrote else 'up to date:'} {n} placeholder images and {manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
