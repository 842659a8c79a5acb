"""Loss terms against hand computation on small tensors."""

import pytest
import torch

from scoft.losses import (
    loss_contrastive,
    loss_ldm,
    loss_memorization,
    loss_perceptual,
    sample_timesteps,
    total_loss,
)


def test_loss_ldm_is_mean_squared_error() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    # (1 + 0 + 4 + 16) / 4
    assert loss_ldm(pred, target).item() == pytest.approx(5.25)


def test_loss_memorization_targets_the_generic_prediction_without_gradient() -> None:
    pred = torch.tensor([1.0, -1.0], requires_grad=True)
    generic = torch.tensor([0.0, 1.0], requires_grad=True)
    loss = loss_memorization(pred, generic)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert generic.grad is None
    assert torch.allclose(pred.grad, torch.tensor([1.0, -2.0]))  # d/dp mean((p - g)^2) = (p - g)


def test_loss_perceptual_is_mean_positive_distance() -> None:
    assert loss_perceptual(torch.tensor([0.2, 0.4])).item() == pytest.approx(0.3)


def test_contrastive_difference_form() -> None:
    d_pos = torch.tensor([1.0, 2.0])
    d_neg = torch.tensor([[0.5, 0.5], [1.0, 3.0]])
    # row 0: 1 - 0.5 = 0.5; row 1: 2 - 2 = 0; mean 0.25
    assert loss_contrastive(d_pos, d_neg).item() == pytest.approx(0.25)


def test_contrastive_difference_ignores_padding_negatives() -> None:
    d_pos = torch.tensor([1.0, 2.0])
    d_neg = torch.tensor([[0.5, 99.0], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [False, False]])
    # row 0: 1 - 0.5; row 1 has no negatives: its positive term only (as the released code)
    assert loss_contrastive(d_pos, d_neg, mask).item() == pytest.approx((0.5 + 2.0) / 2)


def test_contrastive_triplet_form_with_margin() -> None:
    d_pos = torch.tensor([1.0])
    d_neg = torch.tensor([[0.8, 2.0]])
    # max(0, 1 - 0.8 + 0.5) = 0.7 ; max(0, 1 - 2 + 0.5) = 0 -> mean 0.35
    out = loss_contrastive(d_pos, d_neg, form="triplet", margin=0.5)
    assert out.item() == pytest.approx(0.35)
    assert loss_contrastive(d_pos, d_neg, form="triplet", margin=0.0).item() == pytest.approx(0.1)


def test_contrastive_rejects_bad_shapes_and_forms() -> None:
    with pytest.raises(ValueError, match="B x K"):
        loss_contrastive(torch.ones(2), torch.ones(3, 1))
    with pytest.raises(ValueError, match="unknown contrastive form"):
        loss_contrastive(torch.ones(1), torch.ones(1, 1), form="hinge")  # type: ignore[arg-type]


def test_total_loss_weights_present_terms_only() -> None:
    terms = {"ldm": torch.tensor(2.0), "m": torch.tensor(1.0), "p": None, "c": torch.tensor(-1.0)}
    weights = {"ldm": 0.7, "m": 0.3, "p": 0.01, "c": 0.05}
    assert total_loss(terms, weights).item() == pytest.approx(0.7 * 2 + 0.3 * 1 - 0.05)


def test_total_loss_rejects_unweighted_terms_and_empty_input() -> None:
    with pytest.raises(KeyError, match="c"):
        total_loss({"ldm": torch.tensor(1.0), "c": torch.tensor(1.0)}, {"ldm": 1.0})
    with pytest.raises(ValueError, match="no loss term"):
        total_loss({"ldm": None}, {"ldm": 1.0})


def test_timesteps_are_sampled_from_one_to_t_minus_one() -> None:
    gen = torch.Generator().manual_seed(0)
    t = sample_timesteps(5000, 4, gen)
    assert t.dtype == torch.int64
    assert set(t.tolist()) == {1, 2, 3}
    big = sample_timesteps(20000, 1000, gen)
    assert big.min().item() >= 1 and big.max().item() <= 999


def test_timesteps_are_reproducible_from_the_generator() -> None:
    a = sample_timesteps(8, 1000, torch.Generator().manual_seed(3))
    b = sample_timesteps(8, 1000, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        sample_timesteps(1, 1)
