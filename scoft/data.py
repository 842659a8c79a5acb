"""CCUB data, re-exported from its modules: ``records`` (metadata.jsonl), ``sheet`` and ``fetch`` (downloading a
CCUB-style sheet), ``caption`` (blip_text), ``dataset`` (the training Dataset), ``synthetic`` (offline sets),
``images`` (RGB conversion and the training crop).

- ``python -m scoft fetch-ccub --csv SHEET.csv --culture ID --out DIR`` downloads a culture's images.
- ``python -m scoft caption --captioner DIR --data DIR`` fills ``blip_text`` with a local captioning model.
"""

from __future__ import annotations

from scoft.caption import caption_dataset, caption_images, caption_main, load_captioner
from scoft.dataset import CCUBDataset, collate
from scoft.fetch import (
    ACCEPTED_CONTENT_TYPES,
    REPORT_FILE,
    RETRY_HTTP_CODES,
    USER_AGENT,
    FetchError,
    FetchOptions,
    FetchSummary,
    RowOutcome,
    decode_image,
    download_bytes,
    existing_image,
    fetch_ccub,
    fetch_main,
    fetch_row,
    save_image,
    url_stem,
)
from scoft.images import crop_box, image_to_tensor, resize_shorter_side, to_rgb, training_crop
from scoft.records import IMAGES_DIR, METADATA_FILE, Record, read_metadata, resolve_path, write_metadata
from scoft.sheet import COLUMN_ALIASES, CULTURE_ALIASES, REQUIRED_COLUMNS, SheetRow, culture_matcher, read_sheet
from scoft.synthetic import CATEGORY_WORDS, SYNTH_CATEGORIES, SYNTH_HUES, SYNTH_SHAPES, draw_synthetic, synthesize_ccub

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "CATEGORY_WORDS",
    "COLUMN_ALIASES",
    "CULTURE_ALIASES",
    "IMAGES_DIR",
    "METADATA_FILE",
    "REPORT_FILE",
    "REQUIRED_COLUMNS",
    "RETRY_HTTP_CODES",
    "SYNTH_CATEGORIES",
    "SYNTH_HUES",
    "SYNTH_SHAPES",
    "USER_AGENT",
    "CCUBDataset",
    "FetchError",
    "FetchOptions",
    "FetchSummary",
    "Record",
    "RowOutcome",
    "SheetRow",
    "caption_dataset",
    "caption_images",
    "caption_main",
    "collate",
    "crop_box",
    "culture_matcher",
    "decode_image",
    "download_bytes",
    "draw_synthetic",
    "existing_image",
    "fetch_ccub",
    "fetch_main",
    "fetch_row",
    "image_to_tensor",
    "load_captioner",
    "read_metadata",
    "read_sheet",
    "resize_shorter_side",
    "resolve_path",
    "save_image",
    "synthesize_ccub",
    "to_rgb",
    "training_crop",
    "url_stem",
    "write_metadata",
]
