"""The critic's projection term for the style (Critic(projection=True), model.d_projection)."""

from __future__ import annotations

import torch

from symbolic.modules import Critic

SMALL = dict(n_tracks=1, n_bars=2, steps_per_bar=8, beats_per_bar=4, n_pitches=24, lowest_pitch=36, n_styles=3,
             channels=(4, 6), hidden=5, style_dim=2)


def _rolls(n: int = 4) -> torch.Tensor:
    torch.manual_seed(3)
    return (torch.rand(n, 1, 2, 8, 24) > 0.7).float()


def test_a_new_projection_scores_as_the_critic_without_it_with_the_same_other_weights():
    torch.manual_seed(0)
    plain = Critic(**SMALL)
    torch.manual_seed(0)
    proj = Critic(**SMALL, projection=True)
    assert proj.style_proj.weight.shape == (3 + 1, 2 * 5)  # a row per style and "unknown"; bars x hidden
    assert torch.equal(proj.style_proj.weight, torch.zeros(4, 10))
    own = proj.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in plain.state_dict().items())
    assert set(own) - set(plain.state_dict()) == {"style_proj.weight"}
    style = torch.tensor([0, 2, -1, 1])
    with torch.no_grad():
        assert torch.equal(proj(_rolls(), style=style), plain(_rolls(), style=style))


def test_the_projection_adds_the_inner_product_of_the_style_row_and_the_phrase_features():
    torch.manual_seed(0)
    proj = Critic(**SMALL, projection=True)
    torch.manual_seed(0)
    plain = Critic(**SMALL)
    with torch.no_grad():
        proj.style_proj.weight.copy_(torch.arange(40, dtype=torch.float32).reshape(4, 10) / 40)
    features = {}
    plain.head.register_forward_hook(lambda m, inp, out: features.update(h=inp[0][:, :10]))
    style = torch.tensor([0, 2, -1, 1])  # -1: the "unknown" row, the last
    with torch.no_grad():
        base = plain(_rolls(), style=style)
        rows = proj.style_proj.weight[torch.tensor([0, 2, 3, 1])]
        expected = base + (rows * features["h"]).sum(1)
        assert torch.allclose(proj(_rolls(), style=style), expected, atol=1e-6)
        # another style, another score for the same phrases
        assert not torch.allclose(proj(_rolls(), style=torch.tensor([1, 1, 1, 1])), proj(_rolls(), style=style))


def test_init_from_gives_a_critic_the_projection_at_zero(grown_from_checkpoint):
    first, proj, roll, _ = grown_from_checkpoint(d_projection=True)
    assert torch.equal(proj.critic.style_proj.weight, torch.zeros_like(proj.critic.style_proj.weight))
    assert proj.g_steps == first.g_steps
    style = torch.tensor([0, -1, 0])
    with torch.no_grad():
        assert torch.allclose(proj.critic(roll, style=style), first.critic(roll, style=style), atol=1e-6)
        for name, p in first.generator.state_dict().items():
            assert torch.equal(proj.generator.state_dict()[name], p)
