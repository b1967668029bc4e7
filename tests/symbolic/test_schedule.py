"""A training schedule: loss terms and monophony that change at given generator steps of one run."""

from __future__ import annotations

import pytest
import torch

from symbolic.lightning import MuseGANModule, check_schedule, stat_term_weights
from symbolic.modules import STAT_TERMS

META = {"tracks": ["melody", "bridge", "piano"], "programs": [0, 0, 0], "is_drum": [False, False, False]}
PHASES = [{"from_step": 3, "density_weight": 1},
          {"from_step": 5, "density_weight": 0, "stats_weight": 15, "stats_terms": ["density", "upc"]},
          {"from_step": 9, "monophonic": ["melody"]}]


def _module(**kw):
    return MuseGANModule(n_bars=2, steps_per_bar=8, n_pitches=24, data_meta=META, **kw)


def test_check_schedule_normalises_phases():
    out = check_schedule(PHASES, META, 3)
    assert out == [{"from_step": 3, "density_weight": 1.0},
                   {"from_step": 5, "density_weight": 0.0, "stats_weight": 15.0,
                    "stats_terms": {"density": 1.0, "upc": 1.0}},
                   {"from_step": 9, "monophonic": (0,)}]
    assert isinstance(out[0]["density_weight"], float)
    assert check_schedule(None, META, 3) == [] and check_schedule([], META, 3) == []


@pytest.mark.parametrize("schedule, message", [
    ([{"from_step": 5, "lr": 0.1}], r"schedule\[0\]: unknown setting 'lr' \(a phase may set: density_weight, "),
    ([{"stats_weight": 1.0}], r"schedule\[0\]: from_step must be a generator step count >= 0, got None"),
    ([{"from_step": -1}], r"schedule\[0\]: from_step must be a generator step count >= 0, got -1"),
    ([{"from_step": 2.5}], r"schedule\[0\]: from_step must be a generator step count >= 0, got 2.5"),
    ([{"from_step": 5}, {"from_step": 5}], r"schedule\[1\]: from_step 5 is not after the previous phase's 5"),
    ([{"from_step": 1, "stats_weight": -2}], r"schedule\[0\]: stats_weight must be a number >= 0, got -2"),
    ([{"from_step": 1, "density_weight": "high"}], r"schedule\[0\]: density_weight must be a number >= 0"),
    ([{"from_step": 1, "stats_terms": ["swing"]}], r"unknown schedule\[0\]\.stats_terms \['swing'\]"),
    ([{"from_step": 1, "stats_terms": {"lengths": -1}}], r"schedule\[0\]\.stats_terms: the weight of 'lengths' must be"),
    ([{"from_step": 1, "stats_terms": "density"}], r"schedule\[0\]\.stats_terms: expected a list of terms or a mapping"),
    ([{"from_step": 1, "monophonic": ["drums"]}], r"schedule\[0\]\.monophonic: unknown track 'drums'"),
    (["stats"], r"schedule\[0\]: expected a mapping"),
    ([{"from_step": 1, "stats_by_style": "yes"}], r"schedule\[0\]: stats_by_style must be true or false, got 'yes'"),
])
def test_bad_schedules_are_refused_by_name(schedule, message):
    with pytest.raises(ValueError, match=message):
        _module(schedule=schedule)


def test_stat_term_weights_from_a_list_or_a_mapping():
    assert stat_term_weights(["density", "upc"]) == {"density": 1.0, "upc": 1.0}
    assert stat_term_weights({"lengths": 3, "chords": 0.5}) == {"lengths": 3.0, "chords": 0.5}
    assert stat_term_weights(()) == {}
    for bad, message in (({"lengths": "x"}, "the weight of 'lengths' must be a number >= 0, got 'x'"),
                         ({"lengths": True}, "the weight of 'lengths' must be"),
                         ({"swing": 1}, r"unknown stats_terms \['swing'\]")):
        with pytest.raises(ValueError, match=message):
            stat_term_weights(bad)
    with pytest.raises(ValueError, match="unknown stats_terms"):
        _module(stats_terms={"swing": 2.0})


def test_phases_follow_the_generator_step_count():
    m = _module(stats_terms=STAT_TERMS, schedule=PHASES)
    expected = {  # generator step -> (density_weight, stats_weight, stats_terms, monophonic)
        0: (0.0, 0.0, tuple(STAT_TERMS), ()),
        2: (0.0, 0.0, tuple(STAT_TERMS), ()),
        3: (1.0, 0.0, tuple(STAT_TERMS), ()),
        5: (0.0, 15.0, ("density", "upc"), ()),
        8: (0.0, 15.0, ("density", "upc"), ()),
        9: (0.0, 15.0, ("density", "upc"), (0,)),
        100: (0.0, 15.0, ("density", "upc"), (0,)),
        4: (1.0, 0.0, tuple(STAT_TERMS), ()),          # a run resumed from an earlier checkpoint goes back
    }
    for step, (density, stats, terms, mono) in expected.items():
        m.g_steps = step
        m.apply_schedule()
        s = m.settings()
        assert (s["density_weight"], s["stats_weight"], tuple(s["stats_terms"]), tuple(s["monophonic"])) == \
            (density, stats, terms, mono), step
        for g in (m.generator, m.g_ema):                 # both generators, and the config export saves
            assert g.monophonic == mono and g.config["monophonic"] == list(mono), step


def test_a_base_monophonic_track_stays_until_a_phase_changes_it():
    m = _module(monophonic=["bridge"], schedule=[{"from_step": 2, "monophonic": []},
                                                  {"from_step": 4, "stats_weight": 1.0}])
    seen = []
    for step in (0, 2, 4):
        m.g_steps = step
        m.apply_schedule()
        seen.append(m.generator.monophonic)
    assert seen == [(1,), (), ()]


def test_a_scheduled_fit_switches_losses_and_monophony_mid_run(tmp_path, tiny_fit):
    # n_critic 1: every training step is one critic and one generator step (2 global steps)
    phase = [{"from_step": 2, "monophonic": ["melody"], "stats_weight": 1.0, "stats_terms": ["density", "upc"]}]
    model, trainer = tiny_fit(tmp_path, 8, schedule=phase)
    assert model.g_steps == 4
    assert model.generator.monophonic == (0,) and model.g_ema.config["monophonic"] == [0]
    assert {k for k in trainer.callback_metrics if k.startswith("loss/stats_")} == {"loss/stats_density",
                                                                                    "loss/stats_upc"}
    with torch.no_grad():
        z = model.g_ema.sample_latents(2, generator=torch.Generator().manual_seed(0))
        out = model.g_ema(z) > 0.5
    assert int(out[:, 0].sum(-1).max()) <= 1                 # the melody now holds one pitch at a time
    weighted = [{"from_step": 0, "stats_weight": 1.0, "stats_terms": {"lengths": 2.0, "chords": 0.0}}]
    _, trainer = tiny_fit(tmp_path / "weighted", 4, schedule=weighted)
    assert {k for k in trainer.callback_metrics if k.startswith("loss/stats_")} == {"loss/stats_lengths",
                                                                                    "loss/stats_chords"}
    plain, trainer = tiny_fit(tmp_path / "plain", 8)
    assert plain.generator.monophonic == ()
    assert not any(k.startswith("loss/stats_") for k in trainer.callback_metrics)


def test_a_checkpoint_exports_and_resumes_in_its_phase(tmp_path, tiny_fit):
    import json

    from symbolic.export import export_checkpoint
    from symbolic.lightning import read_training_checkpoint

    phase = [{"from_step": 3, "monophonic": ["melody"]}]
    model, trainer = tiny_fit(tmp_path, 8, schedule=phase)       # 4 generator steps: in the phase
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    _, card = export_checkpoint(ckpt, tmp_path / "out", "sched", raw=True)
    assert json.loads(card.read_text())["generator"]["monophonic"] == [0]
    early, trainer = tiny_fit(tmp_path / "early", 4, schedule=phase)  # 2 generator steps: before it
    trainer.save_checkpoint(tmp_path / "early.ckpt")
    _, card = export_checkpoint(tmp_path / "early.ckpt", tmp_path / "out", "early", raw=True)
    assert json.loads(card.read_text())["generator"]["monophonic"] == []
    fresh = MuseGANModule(**{k: v for k, v in model.hparams.items() if not k.startswith("_")})
    fresh.on_load_checkpoint(read_training_checkpoint(ckpt))
    assert fresh.g_steps == 4 and fresh.generator.monophonic == (0,) and fresh.g_ema.monophonic == (0,)


def test_a_phase_from_step_zero_is_in_force_from_the_start():
    m = _module(schedule=[{"from_step": 0, "monophonic": ["piano"], "stats_weight": 2.0}])
    assert m.generator.monophonic == (2,) and m.g_ema.monophonic == (2,)
    assert m.settings()["stats_weight"] == 2.0
