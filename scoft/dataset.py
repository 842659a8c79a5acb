"""The training Dataset: CCUB images, their captions and negatives, transformed as SD training expects."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoft.images import crop_box, image_to_tensor, resize_shorter_side, to_rgb
from scoft.records import METADATA_FILE, Record, read_metadata, resolve_path

if TYPE_CHECKING:
    import torch


class CCUBDataset:
    """CCUB images with their captions and negatives, transformed as Stable Diffusion training expects.

    Each item: ``pixel_values`` (3×R×R in [-1, 1]), ``negative_pixel_values`` (K×3×R×R, K may be 0), ``text``,
    ``blip_text``, ``file_name``, ``culture`` and, with a tokenizer, ``input_ids`` / ``blip_input_ids``.
    The random crop uses the same relative offset for the positive and its negatives (their layouts match); the flip
    is shared when ``joint_flip`` and drawn per image otherwise. Randomness depends on (seed, epoch, index) only, so
    results do not depend on worker processes; call :meth:`set_epoch` to vary it between epochs.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        resolution: int = 512,
        center_crop: bool = True,
        random_flip: bool = True,
        joint_flip: bool = True,
        tokenizer: Any = None,
        max_negatives: int | None = None,
        seed: int = 0,
        records: Sequence[Record] | None = None,
    ) -> None:
        if resolution < 1:
            raise ValueError("resolution must be positive")
        if max_negatives is not None and max_negatives < 0:
            raise ValueError("max_negatives must be >= 0")
        self.data_dir = Path(data_dir)
        self.records = list(read_metadata(self.data_dir) if records is None else records)
        if not self.records:
            raise ValueError(f"no records in {self.data_dir / METADATA_FILE}")
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.joint_flip = joint_flip
        self.tokenizer = tokenizer
        self.max_negatives = max_negatives
        self.seed = seed
        self.epoch = 0
        missing = [
            str(path)
            for rec in self.records
            for path in (resolve_path(self.data_dir, p) for p in (rec.file_name, *rec.negative_imgpath))
            if not path.is_file()
        ]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) listed in metadata are missing, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def negatives_of(self, record: Record) -> tuple[str, ...]:
        return record.negative_imgpath if self.max_negatives is None else record.negative_imgpath[: self.max_negatives]

    def _load(self, name: str, offset: tuple[float, float], flip: bool) -> torch.Tensor:
        from PIL import Image

        with Image.open(resolve_path(self.data_dir, name)) as img:
            image = resize_shorter_side(to_rgb(img), self.resolution)
        image = image.crop(crop_box(*image.size, self.resolution, *offset))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(image)

    def load_image(self, name: str, flip: bool, offset: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
        """One image as training sees it at crop ``offset`` (centre by default), flipped or not."""
        return self._load(name, offset, flip)

    def _tokenize(self, text: str) -> torch.Tensor:
        return self.tokenizer(
            text,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index)

    def item(self, index: int, *, images: bool = True, negatives: bool = True) -> dict[str, Any]:
        """Item ``index``; without ``images`` no file is read (``pixel_values`` absent, for cached latents), without
        ``negatives`` the negatives are not read (``negative_pixel_values`` absent). The random draws are the same."""
        import torch

        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        record = self.records[index]
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        offset = (0.5, 0.5) if self.center_crop else (rng.random(), rng.random())
        names = self.negatives_of(record)
        flips = [self.random_flip and rng.random() < 0.5]
        for _ in names:
            flips.append(flips[0] if self.joint_flip else (self.random_flip and rng.random() < 0.5))
        item: dict[str, Any] = {"index": index}
        if images:
            pixel_values = self._load(record.file_name, offset, flips[0])
            item["pixel_values"] = pixel_values
            if negatives and names:
                item["negative_pixel_values"] = torch.stack(
                    [self._load(n, offset, f) for n, f in zip(names, flips[1:], strict=True)]
                )
            elif negatives:
                item["negative_pixel_values"] = pixel_values.new_zeros((0, *pixel_values.shape))
        item |= {
            "text": record.text,
            "blip_text": record.blip_text,
            "file_name": record.file_name,
            "culture": record.culture,
            "flipped": flips[0],
        }
        if self.tokenizer is not None:
            item["input_ids"] = self._tokenize(record.text)
            item["blip_input_ids"] = self._tokenize(record.blip_text)
        return item


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items; negatives are padded with zeros to the largest K and ``negative_mask`` marks real ones.
    Keys an item leaves out (images, negatives) are left out of the batch."""
    import torch

    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {"index": torch.tensor([it.get("index", -1) for it in items])}
    if "pixel_values" in items[0]:
        batch["pixel_values"] = torch.stack([it["pixel_values"] for it in items])
    if "negative_pixel_values" in items[0]:
        counts = [it["negative_pixel_values"].shape[0] for it in items]
        k = max(counts)
        shape = items[0]["pixel_values"].shape
        negatives = torch.zeros((len(items), k, *shape), dtype=batch["pixel_values"].dtype)
        mask = torch.zeros((len(items), k), dtype=torch.bool)
        for i, (it, n) in enumerate(zip(items, counts, strict=True)):
            negatives[i, :n] = it["negative_pixel_values"]
            mask[i, :n] = True
        batch["negative_pixel_values"] = negatives
        batch["negative_mask"] = mask
    for key in ("input_ids", "blip_input_ids"):
        if key in items[0]:
            batch[key] = torch.stack([it[key] for it in items])
    for key in ("text", "blip_text", "file_name", "culture", "flipped"):
        batch[key] = [it[key] for it in items]
    return batch
