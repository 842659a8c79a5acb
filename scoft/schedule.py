"""Learning-rate schedules, advanced once per optimizer step.

- ``authors``: the schedule as the authors' run had it. Their script builds diffusers' cosine schedule over
  ``max_train_steps * gradient_accumulation_steps`` steps (and the warm-up likewise scaled), but Accelerate advances it
  only on synchronised steps, i.e. once per optimizer step; training therefore ends a quarter of the way down the
  cosine (with 4 accumulation steps: lr ends at 0.5 (1 + cos(pi / 4)) = 0.854 x the base rate).
- ``cosine``: the same cosine over the optimizer steps actually taken, ending at zero.
- ``constant``: the base rate throughout (after the warm-up).
"""

from __future__ import annotations

from typing import Literal

import torch

LRSchedule = Literal["authors", "cosine", "constant"]
LR_SCHEDULES: tuple[str, ...] = ("authors", "cosine", "constant")


def schedule_horizon(schedule: LRSchedule, max_steps: int, warmup_steps: int, accumulation: int) -> tuple[int, int]:
    """(warm-up steps, total steps) the scheduler is built with, in the units it is stepped in (optimizer steps)."""
    if schedule == "authors":
        return warmup_steps * accumulation, max_steps * accumulation
    if schedule in ("cosine", "constant"):
        return warmup_steps, max_steps
    raise ValueError(f"unknown lr_schedule {schedule!r} (choose {', '.join(LR_SCHEDULES)})")


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: LRSchedule, max_steps: int, warmup_steps: int, accumulation: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The diffusers scheduler for ``schedule``; call ``step()`` once per optimizer step."""
    from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    warmup, total = schedule_horizon(schedule, max_steps, warmup_steps, accumulation)
    if schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warmup)
    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)
