"""density_matching_loss: the per-bar note-density term of the composer's generator loss."""

from __future__ import annotations

import pytest
import torch

from symbolic.modules import density_matching_loss


def _roll() -> torch.Tensor:
    """2 phrases, 1 track, 2 bars of 4 steps x 3 pitches; bar densities 2, 0 | 0, 12."""
    r = torch.zeros(2, 1, 2, 4, 3)
    r[0, 0, 0, :2, 0] = 1
    r[1, 0, 1] = 1
    return r


def test_zero_for_the_same_bars_in_any_order():
    r = _roll()
    assert density_matching_loss(r, r).item() == 0.0
    assert density_matching_loss(r[[1, 0]], r).item() == 0.0
    assert density_matching_loss(r.flip(2), r).item() == 0.0  # bars swapped within phrases


def test_known_values():
    r = _roll()
    # real densities sorted [0, 0, 2, 12], mean 3.5; all-silent fake: mean gap 3.5 / (3.5 + 1)
    assert density_matching_loss(torch.zeros_like(r), r).item() == pytest.approx(3.5 / 4.5)
    # soft fake: every cell 0.5 -> 6 in every bar; |6-0|+|6-0|+|6-2|+|6-12| = 22, / 4 / 4.5
    assert density_matching_loss(torch.full_like(r, 0.5), r).item() == pytest.approx(22 / 4 / 4.5)
    # two tracks: the mean of the tracks' terms
    two = torch.cat([r, torch.zeros_like(r)], dim=1)
    fake = torch.zeros_like(two)
    assert density_matching_loss(fake, two).item() == pytest.approx((3.5 / 4.5 + 0.0) / 2)


def test_gradient_reaches_the_generated_roll_and_shapes_are_checked():
    r = _roll()
    fake = torch.full_like(r, 0.5, requires_grad=True)
    density_matching_loss(fake, r).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="tracks, bars, steps, pitches"):
        density_matching_loss(r[:1], r)
    with pytest.raises(ValueError, match="tracks, bars, steps, pitches"):
        density_matching_loss(r[0], r[0])


def test_training_logs_the_density_term(tmp_path, tiny_fit):
    from lightning.pytorch.loggers import CSVLogger

    logged = {}
    for weight in (0.0, 5.0):
        model, trainer = tiny_fit(tmp_path, 4, logger=CSVLogger(tmp_path / f"w{weight}"), density_weight=weight)
        logged[weight] = set(trainer.logged_metrics)
        assert model.g_steps == 2
    assert "loss/density" in logged[5.0] and "loss/density" not in logged[0.0]
