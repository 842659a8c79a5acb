"""What a researcher watches during a run: tracker logging (TensorBoard when installed) and validation grids.

``train_log.csv`` is always written (by ``scoft.train.TrainLog``); this adds Accelerate trackers and, every
``validation_steps`` optimizer steps, a grid of fixed prompts x seeds under ``OUT/validation/``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoft.validation import render_validation, save_grid, validation_prompts


def tracker_names(report_to: str) -> list[str]:
    """Accelerate trackers for ``report_to``: ``auto`` picks TensorBoard when it is importable."""
    available = importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX")
    if report_to == "tensorboard":
        if not available:
            raise ValueError("report_to = 'tensorboard' needs the tensorboard package: pip install tensorboard")
        return ["tensorboard"]
    if report_to == "auto" and available:
        return ["tensorboard"]
    return []


def tracker_config(config: Any) -> dict[str, Any]:
    """The config as flat scalars (what TensorBoard's hparams accept)."""
    flat = {}
    for key, value in config.model_dump().items():
        if isinstance(value, bool | int | float | str):
            flat[key] = value
        elif isinstance(value, tuple | list):
            flat[key] = ",".join(str(v) for v in value)
    return flat


class RunWatcher:
    """Called after every optimizer step: logs the loss terms and learning rate, renders due validation grids."""

    def __init__(
        self, accelerator: Any, models: Any, unet: Any, config: Any, records: Sequence[Any], out: Path
    ) -> None:
        self.accelerator, self.models, self.unet, self.config, self.out = accelerator, models, unet, config, out
        self.prompts = validation_prompts(config, records)
        self.grids: list[Path] = []

    def due(self, step: int) -> bool:
        every = self.config.validation_steps
        return bool(every and self.prompts and self.config.validation_seeds and step % every == 0)

    def __call__(self, step: int, values: dict[str, float | None], lr: float) -> None:
        acc = self.accelerator
        if acc.trackers:
            logged = {f"train/{k}": v for k, v in values.items() if v is not None} | {"train/lr": lr}
            acc.log(logged, step=step)
        if not self.due(step):
            return
        acc.wait_for_everyone()
        if acc.is_main_process:
            grid = render_validation(
                self.models,
                self.unet,
                self.prompts,
                self.config.validation_seeds,
                steps=self.config.validation_inference_steps,
                guidance_scale=self.config.validation_guidance_scale,
                resolution=self.config.resolution,
                autocast=acc.autocast(),
            )
            self.grids.append(save_grid(grid, self.out, step))
            for tracker in acc.trackers:
                if tracker.name == "tensorboard":
                    import numpy as np

                    tracker.writer.add_images("validation", np.asarray(grid)[None], step, dataformats="NHWC")
        acc.wait_for_everyone()
