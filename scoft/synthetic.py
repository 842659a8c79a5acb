"""Synthetic CCUB-like sets: procedural drawings in a per-culture palette, with captions and metadata."""

from __future__ import annotations

import colorsys
import hashlib
import random
from pathlib import Path
from typing import TYPE_CHECKING

from scoft.records import IMAGES_DIR, Record, write_metadata

if TYPE_CHECKING:
    from PIL import Image

SYNTH_HUES = {"china": 0.0, "india": 0.08, "korea": 0.6, "mexico": 0.33, "nigeria": 0.16}
SYNTH_SHAPES = ("circle", "square", "triangle", "stripe")
SYNTH_CATEGORIES = ("ARCH", "CLOTH", "FOOD", "DANCE", "PEOPLE", "CITIES", "RELIG")
CATEGORY_WORDS = {
    "ARCH": "a building",
    "CLOTH": "traditional clothing",
    "FOOD": "a dish",
    "DANCE": "a dance",
    "PEOPLE": "people",
    "CITIES": "a city street",
    "RELIG": "a temple",
}


def hash_index(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _culture_hue(culture: str) -> float:
    key = culture.lower()
    if key in SYNTH_HUES:
        return SYNTH_HUES[key]
    return hash_index(key) / 0xFFFFFFFF


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def draw_synthetic(culture: str, index: int, resolution: int, seed: int) -> tuple[Image.Image, str, str]:
    """One procedurally drawn image in the culture's palette; returns (image, shape, category)."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{seed}:{culture}:{index}")
    hue = _culture_hue(culture)
    shape = SYNTH_SHAPES[(hash_index(culture) + index) % len(SYNTH_SHAPES)]
    category = SYNTH_CATEGORIES[index % len(SYNTH_CATEGORIES)]
    background = _rgb(hue, 0.35, 0.92)
    image = Image.new("RGB", (resolution, resolution), background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5)):
        accent = rng.random() < 0.25
        colour = _rgb(hue + (0.5 if accent else rng.uniform(-0.04, 0.04)), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
        size = rng.uniform(0.2, 0.5) * resolution
        x, y = rng.uniform(0, resolution - size), rng.uniform(0, resolution - size)
        if shape == "circle":
            draw.ellipse((x, y, x + size, y + size), fill=colour)
        elif shape == "square":
            draw.rectangle((x, y, x + size, y + size), fill=colour)
        elif shape == "triangle":
            draw.polygon([(x, y + size), (x + size / 2, y), (x + size, y + size)], fill=colour)
        else:
            draw.rectangle((0, y, resolution, y + size / 3), fill=colour)
    return image, shape, category


def synthesize_ccub(
    out_dir: Path | str,
    *,
    culture: str,
    n_images: int,
    resolution: int = 64,
    seed: int = 0,
    with_blip_text: bool = True,
) -> list[Record]:
    """Write a small CCUB-like set (PNG drawings in a per-culture palette, captions, metadata.jsonl) to ``out_dir``."""
    if n_images < 1 or resolution < 8:
        raise ValueError("n_images must be >= 1 and resolution >= 8")
    out_dir = Path(out_dir)
    (out_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    label = culture.replace("_", " ").title()
    records = []
    for index in range(n_images):
        image, shape, category = draw_synthetic(culture, index, resolution, seed)
        rel = f"{IMAGES_DIR}/{culture}_{index:04d}.png"
        image.save(out_dir / rel)
        records.append(
            Record(
                file_name=rel,
                text=f"{CATEGORY_WORDS[category]} in {label}, drawn as {shape}s",
                blip_text=f"a picture of {shape}s" if with_blip_text else "",
                culture=culture,
                category=category,
                source_url="",
                license="CC0-1.0",
            )
        )
    write_metadata(out_dir, records)
    return records
