"""symbolic.velocity: the data's note velocities by style, pitch and step of the bar."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from symbolic.roll import Grid, Multitrack
from symbolic.trackmap import TrackMap, TrackSpec
from symbolic.velocity import (ALL, VelocityCounter, check_velocity_table, prediction_rmse, save_counts,
                               load_counts, velocity_grid, velocity_table)

GRID = Grid(1, 4, 36, 3)  # 4 steps a bar, pitches 36-38


def _mt(hits, drum=True, held=(), timing=None):
    """One track, 2 bars; ``hits`` [(bar, step, pitch index, velocity)] are onsets, ``held`` sounding
    steps without an onset; ``timing`` {(bar, step, pitch index): offset in steps} gives the
    multitrack a timing (0 elsewhere)."""
    roll = np.zeros((1, 2, 4, 3), np.uint8)
    onsets = np.zeros((1, 2, 4, 3), bool)
    for b, k, p, v in hits:
        roll[0, b, k, p], onsets[0, b, k, p] = v, True
    for b, k, p, v in held:
        roll[0, b, k, p] = v
    late = None
    if timing is not None:
        late = np.zeros(roll.shape)
        for (b, k, p), off in timing.items():
            late[0, b, k, p] = off
    return Multitrack(roll, onsets, TrackMap((TrackSpec("kit", 0, is_drum=drum),), name="t"), GRID, timing=late)


def _counts():
    c = VelocityCounter(1, 3, 4)
    c.add(_mt([(0, 0, 0, 100), (1, 0, 0, 60), (0, 2, 1, 40)], held=[(0, 1, 0, 99)]), "rock", "train")
    c.add(_mt([(0, 0, 0, 20), (0, 3, 2, 50)]), "jazz", "train")
    c.add(_mt([(0, 0, 0, 90), (1, 2, 1, 30)]), "rock", "test")
    return c


def test_counts_of_hand_made_onsets_and_held_steps_do_not_count(tmp_path):
    arrays = _counts().arrays(["jazz", "rock"])
    stats = arrays["stats"]                        # [splits, styles, 6, T, P, S]
    rock = stats[0, 1, :, 0]
    assert rock[:, 0, 0].tolist() == [2, 160, 100 ** 2 + 60 ** 2, 0, 0, 0]   # no timing read: none counted
    assert rock[:, 1, 2].tolist() == [1, 40, 1600, 0, 0, 0]
    assert rock[0].sum() == 3                      # the held step (bar 0, step 1) is not an onset
    assert stats[0, 0, :, 0, 0, 0].tolist() == [1, 20, 400, 0, 0, 0] and stats[2, 1, 0].sum() == 2
    save_counts(tmp_path / "velocity.npz", _counts(), ["jazz", "rock"])
    back = load_counts(tmp_path)
    assert back["styles"] == ["jazz", "rock"] and np.array_equal(back["stats"], stats)
    with pytest.raises(FileNotFoundError, match="no velocity counts"):
        load_counts(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split: expected one of train, valid, test"):
        VelocityCounter(1, 3, 4).add(_mt([]), "rock", "dev")


def test_table_of_means_with_a_minimum_count():
    counts = {"stats": _counts().arrays(["jazz", "rock"])["stats"], "styles": ["jazz", "rock"],
              "splits": ["train", "valid", "test"]}
    drums = velocity_table(counts, ["kit"], [True], 36, min_count=2)
    assert drums["steps_per_bar"] == 4 and drums["min_count"] == 2 and drums["split"] == "train"
    styles = drums["tracks"]["kit"]["styles"]
    assert drums["tracks"]["kit"]["by"] == "pitch"
    assert styles["rock"] == {"36": [80, None, None, None]}        # pitch 37: 1 note, under the minimum
    assert "jazz" not in styles                                     # no cell of 2 notes
    assert styles[ALL] == {"36": [60, None, None, None]}            # (100 + 60 + 20) / 3
    spread = drums["tracks"]["kit"]["spread"]
    assert spread["rock"] == {"36": [20, None, None, None]}          # 100 and 60 about 80
    assert spread[ALL] == {"36": [33, None, None, None]}            # 100, 60, 20 about 60: sqrt(3200 / 3)
    pitched = velocity_table(counts, ["keys"], [False], 36, min_count=1)["tracks"]["keys"]
    assert pitched["by"] == "step" and pitched["styles"]["rock"] == {ALL: [80, None, 40, None]}
    assert pitched["styles"][ALL] == {ALL: [60, None, 40, 50]}
    json.dumps(drums)  # JSON-able
    with pytest.raises(ValueError, match="2 track names and 2 is_drum flags for velocity counts of 1 tracks"):
        velocity_table(counts, ["a", "b"], [True, True], 36)


def test_grid_takes_the_style_then_the_pooled_cell():
    table = {"steps_per_bar": 4, "tracks": {"kit": {"by": "pitch", "styles": {
        ALL: {"36": [60, None, 50, None], "38": [30, 30, 30, 30]},
        "rock": {"36": [80, None, None, 70], "99": [1, 1, 1, 1]}}}}}   # a pitch off the grid is left out
    g = velocity_grid(table, "kit", "rock", 3, 36)
    assert g.shape == (3, 4)
    assert g[0].tolist()[0] == 80 and g[0, 2] == 50 and g[0, 3] == 70 and math.isnan(g[0, 1])
    assert np.isnan(g[1]).all() and g[2].tolist() == [30, 30, 30, 30]
    assert velocity_grid(table, "kit", "polka", 3, 36)[0, 0] == 60     # an unknown style: pooled
    assert velocity_grid(table, "kit", None, 3, 36)[0, 0] == 60
    assert velocity_grid(table, "bass", "rock", 3, 36) is None and velocity_grid(None, "kit", None, 3, 36) is None
    steps = {"steps_per_bar": 4, "tracks": {"keys": {"by": "step", "styles": {ALL: {ALL: [90, None, 70, None]}}}}}
    assert velocity_grid(steps, "keys", None, 3, 36)[:, 0].tolist() == [90, 90, 90]   # every pitch


def test_rmse_of_a_per_cell_prediction_from_the_counts():
    counts = {"stats": _counts().arrays(["jazz", "rock"])["stats"], "styles": ["jazz", "rock"],
              "splits": ["train", "valid", "test"]}
    predict = np.full((2, 3, 4), 80.0)
    predict[1, 1, 2] = 40.0
    rmse, n = prediction_rmse(counts, predict, "train", 0)
    # rock: (100-80)^2 + (60-80)^2 + 0; jazz: (20-80)^2 + (50-80)^2
    assert n == 5 and rmse == pytest.approx(math.sqrt((400 + 400 + 3600 + 900) / 5))
    rmse, n = prediction_rmse(counts, predict, "test", 0)
    assert n == 2 and rmse == pytest.approx(10.0)  # 90 against 80, 30 against 40
    assert math.isnan(prediction_rmse(counts, predict, "valid", 0)[0])


@pytest.mark.parametrize("table, message", [
    ([], "expected a mapping with 'tracks'"),
    ({"steps_per_bar": 8, "tracks": {}}, "steps_per_bar 8 does not match the model's 4"),
    ({"steps_per_bar": 4, "tracks": {"bass": {}}}, "unknown track 'bass'"),
    ({"steps_per_bar": 4, "tracks": {"kit": {"by": "bar", "styles": {}}}}, "kit: expected"),
    ({"steps_per_bar": 4, "tracks": {"kit": {"by": "pitch", "styles": {"*": {"snare": [1, 1, 1, 1]}}}}},
     "key 'snare' is not a MIDI pitch"),
    ({"steps_per_bar": 4, "tracks": {"kit": {"by": "step", "styles": {"*": {"36": [1, 1, 1, 1]}}}}},
     "the one key"),
    ({"steps_per_bar": 4, "tracks": {"kit": {"by": "pitch", "styles": {"*": {"36": [1, 1, 1]}}}}},
     r"kit\.\*\.36: expected 4 velocities 1-127 or null"),
    ({"steps_per_bar": 4, "tracks": {"kit": {"by": "pitch", "styles": {"*": {"36": [0, 1, None, 1]}}}}},
     "expected 4 velocities 1-127 or null"),
])
def test_bad_tables_are_refused_by_name(table, message):
    with pytest.raises(ValueError, match=rf"^decode\.velocity: .*{message}"):
        check_velocity_table(table, ["kit"], 4)
    assert check_velocity_table(None, ["kit"], 4) is None


def test_export_velocity_adds_a_table_to_a_card_and_leaves_the_rest(tmp_path, capsys):
    from pipeline.cli import main

    cache = tmp_path / "cache"
    cache.mkdir()
    meta = {"tracks": ["kit"], "programs": [0], "is_drum": [True], "n_bars": 2, "styles": ["jazz", "rock"],
            "grid": {"steps_per_beat": 1, "beats_per_bar": 4, "lowest_pitch": 36, "n_pitches": 3, "steps_per_bar": 4}}
    (cache / "meta.json").write_text(json.dumps(meta))
    c = VelocityCounter(1, 3, 4)
    for _ in range(20):
        c.add(_mt([(0, 0, 0, 100)]), "rock", "train")
    save_counts(cache / "velocity.npz", c, ["jazz", "rock"])
    card = tmp_path / "symbolic_x.json"
    before = {"tracks": ["kit"], "is_drum": [True], "grid": meta["grid"], "decode": {"release": {"kit": 0.9}},
              "weights": "symbolic_x.safetensors"}
    card.write_text(json.dumps(before))
    assert main(["export", "velocity", str(card), "--data", str(cache)]) == 0
    after = json.loads(card.read_text())
    table = after["decode"].pop("velocity")
    assert after == before and table["tracks"]["kit"]["styles"]["rock"] == {"36": [100, None, None, None]}
    # a cache that records its kit's GM keys (Groove's, since session 20) puts them in the card too
    (cache / "meta.json").write_text(json.dumps({**meta, "drum_keys": {"26": 46, "58": 43}}))
    assert main(["export", "velocity", str(card), "--data", str(cache)]) == 0
    after = json.loads(card.read_text())
    assert after.pop("drum_keys") == {"26": 46, "58": 43}
    after["decode"].pop("velocity")
    assert after == before
    capsys.readouterr()
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main(["export", "velocity", str(tmp_path / "junk.json"), "--data", str(cache)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.json" in err[0]
    assert (tmp_path / "junk.json").read_text() == "[1, 2]"


def test_export_velocity_refuses_a_bad_card_or_counts_file_in_one_line(tmp_path, capsys):
    from pipeline.cli import main

    cache = tmp_path / "cache"
    cache.mkdir()
    meta = {"tracks": ["kit"], "programs": [0], "is_drum": [True], "n_bars": 2, "styles": ["rock"],
            "grid": {"steps_per_beat": 1, "beats_per_bar": 4, "lowest_pitch": 36, "n_pitches": 3, "steps_per_bar": 4}}
    (cache / "meta.json").write_text(json.dumps(meta))
    save_counts(cache / "velocity.npz", _counts(), ["jazz", "rock"])
    good = {"tracks": ["kit"], "is_drum": [True], "grid": meta["grid"]}
    cards = {"decode": {**good, "decode": "release"}, "is_drum": {**good, "is_drum": [True, False]},
             "grid": {**good, "grid": {"steps_per_bar": 4}}}
    for problem, card in cards.items():
        path = tmp_path / f"{problem}.json"
        path.write_text(json.dumps(card))
        assert main(["export", "velocity", str(path), "--data", str(cache)]) == 2, problem
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"musegansynth: error: {path}"), (problem, err)
        assert json.loads(path.read_text()) == card
    path = tmp_path / "good.json"
    path.write_text(json.dumps(good))
    for data in (b"not a zip", (cache / "velocity.npz").read_bytes()[:100]):
        (cache / "velocity.npz").write_bytes(data)
        assert main(["export", "velocity", str(path), "--data", str(cache)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "velocity.npz: not readable velocity counts" in err[0], err
    np.savez_compressed(cache / "velocity.npz", stats=np.zeros((3, 1, 3, 1, 3, 4)), styles=np.array(["jazz", "rock"]),
                        splits=np.array(["train", "valid", "test"]))
    assert main(["export", "velocity", str(path), "--data", str(cache)]) == 2
    assert "velocity.npz: stats of shape (3, 1, 3, 1, 3, 4), expected [3 splits, 2 styles" in capsys.readouterr().err
    assert json.loads(path.read_text()) == good
    # from QA: a cache on another pitch range gave the drums' velocities to keys 6 below theirs
    save_counts(cache / "velocity.npz", _counts(), ["jazz", "rock"])
    low = tmp_path / "low.json"
    low.write_text(json.dumps({**good, "grid": {**meta["grid"], "lowest_pitch": 30}}))
    assert main(["export", "velocity", str(low), "--data", str(cache)]) == 2
    assert capsys.readouterr().err.strip() == (f"musegansynth: error: {cache}: --data: the cache's lowest pitch is "
                                               f"MIDI 36, the model's MIDI 30")


def test_play_velocities_means_or_seeded_draws_of_the_cells_spread():
    from symbolic.velocity import play_velocities

    mean = np.array([[80.0, np.nan], [120.0, 50.0]])
    spread = np.array([[10.0, 5.0], [30.0, np.nan]])
    onsets = np.array([[True, True], [True, False]])
    vel = np.full((2, 2), 7, np.uint8)
    play_velocities(vel, onsets, mean, spread, 0.0, np.random.default_rng(0))
    assert vel.tolist() == [[80, 7], [120, 7]]       # no cell: left as it was; no onset: untouched
    vel = np.full((2, 2), 7, np.uint8)
    play_velocities(vel, onsets, mean, spread, 0.5, np.random.default_rng(3))
    z = np.random.default_rng(3).standard_normal(2)
    assert vel.tolist() == [[int(np.rint(80 + 0.5 * 10 * z[0])), 7], [int(np.clip(np.rint(120 + 0.5 * 30 * z[1]), 1, 127)), 7]]
    vel = np.full((2, 2), 7, np.uint8)
    play_velocities(vel, onsets, mean, None, 1.0, np.random.default_rng(3))
    assert vel.tolist() == [[80, 7], [120, 7]]       # no spread: the means


def test_perform_sets_velocities_and_returns_the_onsets_offsets():
    from symbolic.velocity import perform

    mean = np.array([[80.0, np.nan], [120.0, 50.0]])
    late = np.array([[-0.2, 0.1], [np.nan, 0.3]])
    onsets = np.array([[True, True], [True, False]])
    vel = np.full((2, 2), 7, np.uint8)
    offsets = perform(vel, onsets, (mean, None, late), 0.0, np.random.default_rng(0))
    assert vel.tolist() == [[80, 7], [120, 7]]
    # each onset's mean offset where the table has one (also where it has no velocity), else 0
    assert offsets.tolist() == [[-0.2, 0.1], [0.0, 0.0]]
    vel2 = np.full((2, 2), 7, np.uint8)
    assert perform(vel2, onsets, (mean, None, np.full((2, 2), np.nan)), 0.0, np.random.default_rng(0)) is None
    assert perform(vel2, onsets, (mean, None, None), 0.0, np.random.default_rng(0)) is None
    assert np.array_equal(vel2, vel)


def test_a_bad_spread_is_refused_by_name():
    table = {"steps_per_bar": 4, "tracks": {"kit": {"by": "pitch", "styles": {"*": {"36": [1, 1, 1, 1]}},
                                                   "spread": {"*": {"36": [0, 1, None, 200]}}}}}
    with pytest.raises(ValueError, match=r"^decode\.velocity: kit\.spread\.\*\.36: expected 4 velocities 0-127 or null"):
        check_velocity_table(table, ["kit"], 4)
    table["tracks"]["kit"]["spread"] = {"*": {"36": [0, 1, None, 2]}}
    assert check_velocity_table(table, ["kit"], 4) is table


def test_timing_counts_table_and_rmse_of_hand_made_offsets(tmp_path):
    c = VelocityCounter(1, 3, 4)
    # the kick on step 0 played 0.25 steps late in one bar and 0.05 in the other; the snare 0.1 early
    c.add(_mt([(0, 0, 0, 100), (1, 0, 0, 60), (0, 2, 1, 40)], timing={(0, 0, 0): 0.25, (1, 0, 0): 0.05,
                                                                        (0, 2, 1): -0.1}), "jazz", "train")
    stats = c.arrays(["jazz"])["stats"][0, 0, :, 0]          # [6, P, S]
    assert stats[3:, 0, 0] == pytest.approx([2, 0.30, 0.25 ** 2 + 0.05 ** 2])
    assert stats[3:, 1, 2] == pytest.approx([1, -0.1, 0.01])
    counts = {"stats": c.arrays(["jazz"])["stats"], "styles": ["jazz"], "splits": ["train", "valid", "test"]}
    table = velocity_table(counts, ["kit"], [True], 36, min_count=2)
    assert table["tracks"]["kit"]["timing"]["jazz"] == {"36": [0.15, None, None, None]}
    assert check_velocity_table(table, ["kit"], 4) is table
    g = velocity_grid(table, "kit", "jazz", 3, 36, field="timing")
    assert g[0, 0] == pytest.approx(0.15) and np.isnan(g[1]).all()
    rmse, n = prediction_rmse(counts, np.full((1, 3, 4), 0.15), "train", 0, what="timing")
    assert n == 3 and rmse == pytest.approx(math.sqrt((0.1 ** 2 + 0.1 ** 2 + 0.25 ** 2) / 3))
    assert prediction_rmse(counts, np.zeros((1, 3, 4)), "train", 0, what="timing")[0] == pytest.approx(
        math.sqrt((0.0625 + 0.0025 + 0.01) / 3))
    # a cache of the first layout (3 statistics) reads with no timing
    np.savez_compressed(tmp_path / "velocity.npz", stats=counts["stats"][:, :, :3], styles=np.array(["jazz"]),
                        splits=np.array(["train", "valid", "test"]))
    old = load_counts(tmp_path)["stats"]
    assert old.shape[2] == 6 and not old[:, :, 3:].any()
    bad = dict(table)
    bad["tracks"] = {"kit": dict(table["tracks"]["kit"], timing={"jazz": {"36": [0.7, None, None, None]}})}
    with pytest.raises(ValueError, match=r"kit\.timing\.jazz\.36: expected 4 offsets -0.5 to 0.5"):
        check_velocity_table(bad, ["kit"], 4)


def test_a_timing_row_of_a_key_the_track_has_not_is_refused_by_name():
    # (velocity_grid reads the key as a pitch: a card that passed the check failed in the song pipeline)
    row = [0.1, None, None, None]
    drums = {"steps_per_bar": 4, "tracks": {"kit": {"by": "pitch", "styles": {}, "timing": {"*": {"kick": row}}}}}
    with pytest.raises(ValueError, match=r"kit\.timing\.\*: key 'kick' is not a MIDI pitch"):
        check_velocity_table(drums, ["kit"], 4)
    pitched = {"steps_per_bar": 4, "tracks": {"kit": {"by": "step", "styles": {}, "timing": {"*": {"60": row}}}}}
    with pytest.raises(ValueError, match=r"kit\.timing\.\*: key '60': a track by step has the one key"):
        check_velocity_table(pitched, ["kit"], 4)
    drums["tracks"]["kit"]["timing"] = {"*": {"36": row}}
    assert check_velocity_table(drums, ["kit"], 4) is drums
