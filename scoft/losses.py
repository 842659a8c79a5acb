"""SCoFT loss terms as pure functions on tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_timesteps(
    batch_size: int,
    num_train_timesteps: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training timesteps, uniform over ``[1, T)``: t = 0 has nothing to denoise and breaks the chain."""
    if num_train_timesteps < 2:
        raise ValueError("need at least 2 training timesteps")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    t = torch.randint(1, num_train_timesteps, (batch_size,), generator=generator, device=gen_device)
    return t if device is None else t.to(device)


def loss_ldm(pred: Tensor, target: Tensor) -> Tensor:
    """L_LDM: mean squared error between the prediction under the culture caption and the noise (or v) target."""
    return F.mse_loss(pred.float(), target.float())


def loss_memorization(pred_ccub: Tensor, pred_generic: Tensor) -> Tensor:
    """L_M: mean squared error toward the (stop-gradient) prediction under the generic caption."""
    return F.mse_loss(pred_ccub.float(), pred_generic.detach().float())


def loss_perceptual(d_pos: Tensor) -> Tensor:
    """L_P: mean distance between the decoded sample and its positive (``d_pos``: one per row)."""
    return d_pos.float().mean()


def loss_contrastive(
    d_pos: Tensor,
    d_neg: Tensor,
    neg_mask: Tensor | None = None,
    form: Literal["difference", "triplet"] = "difference",
    margin: float = 0.0,
) -> Tensor:
    """L_C between the sample and its positive (``d_pos``: B) and negatives (``d_neg``: B x K).

    ``difference`` (the authors' code): D(x, x+) - mean_k D(x, x-_k). ``triplet``: mean_k max(0, D(x, x+) - D(x, x-_k)
    + margin). ``neg_mask`` (B x K bool) marks real negatives; rows with none contribute only 0 to the mean (the
    difference form keeps their positive term, as the authors' code does).
    """
    d_pos = d_pos.float()
    d_neg = d_neg.float()
    if d_neg.dim() != 2 or d_neg.shape[0] != d_pos.shape[0]:
        raise ValueError(f"d_neg must be B x K with B = {d_pos.shape[0]}, got {tuple(d_neg.shape)}")
    mask = torch.ones_like(d_neg) if neg_mask is None else neg_mask.to(d_neg.dtype)
    count = mask.sum(dim=1)
    if form == "difference":
        neg_mean = (d_neg * mask).sum(dim=1) / count.clamp(min=1)
        return (d_pos - neg_mean).mean()
    if form == "triplet":
        hinge = F.relu(d_pos[:, None] - d_neg + margin) * mask
        per_row = hinge.sum(dim=1) / count.clamp(min=1)
        return per_row.mean()
    raise ValueError(f"unknown contrastive form {form!r} (choose 'difference' or 'triplet')")


def total_loss(terms: Mapping[str, Tensor | None], weights: Mapping[str, float]) -> Tensor:
    """Weighted sum of the terms that were computed; a weighted term that is ``None`` is skipped."""
    unknown = sorted(k for k, v in terms.items() if v is not None and k not in weights)
    if unknown:
        raise KeyError(f"no weight for loss terms {unknown}")
    present = [(weights[k], v) for k, v in terms.items() if v is not None]
    if not present:
        raise ValueError("no loss term was computed")
    return sum((w * v for w, v in present[1:]), present[0][0] * present[0][1])
