"""GANSynth building blocks: shapes, conditioning, EMA, gradient penalty, loss names, determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audio.modules import (Critic, GANSynthLoss, Generator, count_parameters, ema_update, gradient_penalty,
                           pitch_index)


def _cond(n: int = 4):
    pitch = torch.tensor([60, 62, 40, 36])[:n]
    program = torch.tensor([0, 40, 128, 33])[:n]
    velocity = torch.tensor([100, 80, 110, 64])[:n]
    return pitch, program, velocity


def _small_generator(frames: int = 16, bins: int = 24) -> Generator:
    torch.manual_seed(0)
    return Generator(latent_dim=8, frames=frames, bins=bins, channels=[16, 12, 8], pitch_dim=4, program_dim=4)


@pytest.mark.parametrize("frames,bins", [(16, 24), (15, 20), (64, 128)])
def test_generator_and_critic_shapes(frames, bins):
    g = _small_generator(frames, bins)
    z = torch.randn(4, 8)
    x = g(z, *_cond())
    assert x.shape == (4, 2, frames, bins), ((4, 2, frames, bins), x.shape)
    d = Critic(channels=[8, 12, 16], n_families=12)
    out = d(x)
    assert out["score"].shape == (4,), out["score"].shape
    assert out["pitch"].shape == (4, 256), out["pitch"].shape
    assert out["family"].shape == (4, 12), out["family"].shape
    assert out["program"].shape == (4, 129), out["program"].shape
    assert "program" not in Critic(channels=[8, 12], n_programs=0)(x)


def test_generator_rejects_wrong_latent():
    g = _small_generator()
    with pytest.raises(ValueError, match=r"z should have shape \[B, 8\]"):
        g(torch.randn(4, 7), *_cond())


def test_pitch_index_separates_drums():
    idx = pitch_index(torch.tensor([60, 60, 36]), torch.tensor([0, 128, 128]))
    assert idx.tolist() == [60, 188, 164]


def test_each_conditioning_input_changes_output():
    g = _small_generator()
    # non-zero FiLM weights so that the per-block conditioning is active as after training
    for block in [g.seed_block, *g.blocks]:
        nn.init.normal_(block.film.weight, std=0.1)
    z = torch.randn(1, 8)
    pitch, program, velocity = torch.tensor([60]), torch.tensor([0]), torch.tensor([100])
    base = g(z, pitch, program, velocity)
    for variant in [(z, pitch + 7, program, velocity), (z, pitch, program + 40, velocity),
                    (z, pitch, program, velocity - 60), (torch.randn(1, 8), pitch, program, velocity)]:
        assert (g(*variant) - base).abs().max() > 1e-4
    # a mix of program embeddings lands between the two programs' outputs' conditioning
    emb = 0.5 * (g.program_embedding.weight[0] + g.program_embedding.weight[40])[None]
    mixed = g(z, pitch, program, velocity, program_embedding=emb)
    assert mixed.shape == base.shape
    assert not torch.allclose(mixed, base)


def test_normalize_denormalize_round_trip_and_if_clamp():
    g = _small_generator()
    g.norm_mean.copy_(torch.randn(2, 24))
    g.norm_std.copy_(torch.rand(2, 24) + 0.5)
    logmag = g.norm_mean[0] + g.norm_std[0] * torch.randn(3, 1, 16, 24).clamp(-3, 3)  # within 8 sigma
    spec = torch.cat([logmag, torch.rand(3, 1, 16, 24) * 2 - 1], dim=1)
    back = g.denormalize(g.normalize(spec))
    torch.testing.assert_close(back, spec, rtol=1e-5, atol=1e-5)
    out = g.denormalize(torch.full((1, 2, 16, 24), 100.0))
    assert out[:, 1].max() <= 1.0 and out[:, 1].min() >= -1.0
    # log magnitude clamped at 8 standard deviations above the mean
    torch.testing.assert_close(out[0, 0, 0], g.norm_mean[0] + 8.0 * g.norm_std[0])


def test_ema_update_math():
    model, ema = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.fill_(4.0)
        ema.weight.zero_()
        ema.bias.fill_(2.0)
    ema_update(ema, model, decay=0.75)
    torch.testing.assert_close(ema.weight, torch.tensor([[0.25, 0.5]]))
    torch.testing.assert_close(ema.bias, torch.tensor([2.5]))
    ema_update(ema, model, decay=0.0)
    torch.testing.assert_close(ema.weight, model.weight)


def test_ema_copies_buffers():
    g, e = _small_generator(), _small_generator()
    g.norm_mean.fill_(3.0)
    ema_update(e, g, decay=0.99)
    assert torch.equal(e.norm_mean, g.norm_mean)


def test_gradient_penalty_on_linear_critic():
    # D(x) = w . x has gradient w everywhere: penalty = (||w|| - 1)^2 whatever the inputs
    w = torch.tensor([3.0, 4.0])  # ||w|| = 5
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    gp = gradient_penalty(lambda x: x @ w, real, fake)
    assert gp.item() == pytest.approx(16.0)
    # D(x) = ||x||^2 / 2 has gradient x: at x_hat = a real + (1 - a) fake with a fixed
    real, fake = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    gp = gradient_penalty(lambda x: 0.5 * (x ** 2).sum(dim=1), real, fake, alpha=torch.tensor([0.25]))
    assert gp.item() == pytest.approx((0.5 - 1.0) ** 2)


def test_gradient_penalty_reaches_critic_parameters():
    d = Critic(channels=[4, 8])
    real, fake = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    gp = gradient_penalty(lambda x: d(x)["score"], real, fake)
    gp.backward()
    assert d.features[0].weight.grad is not None and d.features[0].weight.grad.abs().sum() > 0


def _outputs(b: int = 4) -> dict[str, torch.Tensor]:
    return {"score": torch.randn(b), "pitch": torch.randn(b, 256), "family": torch.randn(b, 12),
            "program": torch.randn(b, 129)}


def test_loss_terms_match_weight_names_and_total():
    loss = GANSynthLoss({"recon_mag": 2.0, "aux_program": 0.0})
    targets = {"pitch": torch.tensor([60, 61, 188, 40]), "family": torch.tensor([0, 1, 11, 4]),
               "program": torch.tensor([0, 1, 128, 40])}
    real_out, fake_out = _outputs(), _outputs()
    total_d, terms_d = loss.critic_loss(real_out, fake_out, torch.tensor(0.5), targets)
    assert set(terms_d) == set(GANSynthLoss.CRITIC_TERMS)
    assert set(terms_d) <= set(loss.weights)
    expected = sum(loss.weights[k] * v for k, v in terms_d.items())
    torch.testing.assert_close(total_d, expected)
    torch.testing.assert_close(terms_d["wgan"], fake_out["score"].mean() - real_out["score"].mean())
    fake, real = torch.randn(4, 2, 8, 6), torch.randn(4, 2, 8, 6)
    total_g, terms_g = loss.generator_loss(fake_out, targets, fake, real)
    assert set(terms_g) == set(GANSynthLoss.GENERATOR_TERMS)
    torch.testing.assert_close(terms_g["recon_mag"], (fake[:, 0] - real[:, 0]).abs().mean())
    expected = sum(loss.weights[k] * v for k, v in terms_g.items())
    torch.testing.assert_close(total_g, expected)
    assert set(loss.weights) == set(GANSynthLoss.CRITIC_TERMS) | set(GANSynthLoss.GENERATOR_TERMS)


def test_recon_if_ignores_silent_bins():
    loss = GANSynthLoss()
    real = torch.zeros(1, 2, 4, 4)
    real[0, 0, :, 0] = 5.0  # only bin 0 is loud
    fake = real.clone()
    fake[0, 1, :, 1:] = 0.9  # IF errors only where the real note is silent
    _, terms = loss.generator_loss(_outputs(1), {"pitch": torch.tensor([1]), "family": torch.tensor([1]),
                                                 "program": torch.tensor([1])}, fake, real)
    assert terms["recon_if"].item() == pytest.approx(0.0, abs=1e-6)
    fake[0, 1, :, 0] = 0.5
    _, terms = loss.generator_loss(_outputs(1), {"pitch": torch.tensor([1]), "family": torch.tensor([1]),
                                                 "program": torch.tensor([1])}, fake, real)
    assert terms["recon_if"].item() == pytest.approx(0.5, rel=1e-4)


def test_unknown_loss_weight_rejected():
    with pytest.raises(ValueError, match="unknown loss weight 'recon'"):
        GANSynthLoss({"recon": 1.0})


def test_generator_deterministic():
    g1, g2 = _small_generator(), _small_generator()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(g1(z, *_cond()), g2(z, *_cond()))
    assert count_parameters(g1) == count_parameters(g2) > 0
