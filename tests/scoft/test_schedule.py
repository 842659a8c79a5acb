"""Learning-rate schedules: the authors' run ends near 0.85 x lr; cosine ends at zero; constant stays."""

import math

import pytest
import torch

from scoft.schedule import build_lr_scheduler, schedule_horizon


def lrs(schedule: str, max_steps: int, accumulation: int, warmup: int = 0, lr: float = 1e-4) -> list[float]:
    """The learning rate of each optimizer step, stepping the scheduler once per optimizer step (as the loop)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_lr_scheduler(opt, schedule, max_steps, warmup, accumulation)  # type: ignore[arg-type]
    out = []
    for _ in range(max_steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_authors_schedule_ends_near_085_of_the_base_rate() -> None:
    n, accum = 1000, 4
    got = lrs("authors", n, accum)
    # by hand: 0.5 (1 + cos(pi * s / (4 n))) at optimizer step s; the last step s = n - 1
    assert got[-1] / 1e-4 == pytest.approx(0.5 * (1 + math.cos(math.pi * (n - 1) / (accum * n))), rel=1e-9)
    assert got[-1] / 1e-4 == pytest.approx(0.8536, abs=1e-3)
    assert got[0] == pytest.approx(1e-4)
    # and it is diffusers' own cosine built over max_train_steps * gradient_accumulation_steps
    from diffusers.optimization import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    ref = get_cosine_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=n * accum)
    assert got[-1] == pytest.approx(1e-4 * ref.lr_lambdas[0](n - 1), rel=1e-12)
    # nearly constant: its mean rate is ~95% of lr; a cosine to zero gives about half
    assert sum(got) / n / 1e-4 == pytest.approx(0.95, abs=0.01)
    assert sum(lrs("cosine", n, accum)) / n / 1e-4 == pytest.approx(0.5, abs=0.01)


def test_cosine_goes_to_zero_and_constant_stays() -> None:
    cos = lrs("cosine", 100, 4)
    assert cos[0] == pytest.approx(1e-4) and cos[-1] < 1e-4 * 1e-3
    assert all(b <= a for a, b in zip(cos, cos[1:], strict=False))
    assert lrs("constant", 50, 4) == [pytest.approx(1e-4)] * 50
    # with one accumulation step the authors' schedule is the plain cosine
    assert lrs("authors", 40, 1) == pytest.approx(lrs("cosine", 40, 1))


def test_warmup_is_scaled_like_the_authors_and_unknown_names_fail() -> None:
    assert schedule_horizon("authors", 100, 5, 4) == (20, 400)
    assert schedule_horizon("cosine", 100, 5, 4) == (5, 100)
    warm = lrs("constant", 10, 4, warmup=4)
    assert warm[:5] == pytest.approx([0, 0.25e-4, 0.5e-4, 0.75e-4, 1e-4])
    with pytest.raises(ValueError, match="lr_schedule"):
        schedule_horizon("linear", 10, 0, 1)  # type: ignore[arg-type]
