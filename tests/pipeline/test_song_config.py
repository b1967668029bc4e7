"""Song configs: the shipped examples load; every wrong value names its key, value and what is allowed."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import yaml

from pipeline.config import (DEFAULT_CONFIG, PROJECT_ROOT, chord_pitch_classes, chords_to_array, load_config,
                             parse_config, resolve_instrument, resolve_weights_path, slugify)
from pipeline.errors import UserError

BASE = {
    "title": "T",
    "seed": 1,
    "tempo": 100,
    "tracks": [{"name": "lead", "source": "melody", "instrument": "Flute"},
               {"name": "drums", "source": "drums"}],
    "sections": [{"name": "a", "bars": 4, "chords": ["C", "Am"]}, {"name": "b", "bars": 2}],
}


def test_default_config_is_a_one_to_two_minute_song_with_drums():
    cfg = load_config(DEFAULT_CONFIG)
    names = [s.name for s in cfg.sections]
    assert names == ["intro", "verse", "chorus", "verse", "chorus", "ending"]
    assert 40 <= cfg.n_bars <= 56 and 100 <= cfg.tempo <= 120
    seconds = cfg.n_bars * cfg.beats_per_bar * 60 / cfg.tempo
    assert 60 <= seconds <= 120, seconds
    assert any(t.source == "drums" for t in cfg.tracks)
    assert cfg.time_signature == (4, 4)


def test_second_example_config_loads():
    cfg = load_config(PROJECT_ROOT / "configs" / "song" / "ballad.yaml")
    assert cfg.sections[1].bars == 6 and len(cfg.sections[1].chords) == 24
    assert cfg.tracks[1].program == 48  # family "string"


def test_parse_values_and_defaults():
    cfg = parse_config(copy.deepcopy(BASE), "x.yaml")
    assert cfg.tracks[0].program == 73 and cfg.tracks[0].volume_db == 0.0 and cfg.tracks[0].pan is None
    assert cfg.tracks[1].morph_seed == cfg.tracks[1].timbre_seed + 1000
    # two chords over four bars cycle, one per bar, expanded to one per beat
    assert cfg.sections[0].chords == ("C",) * 4 + ("Am",) * 4 + ("C",) * 4 + ("Am",) * 4
    assert cfg.sections[1].chords is None
    assert cfg.weights.symbolic.endswith("symbolic_pop909.safetensors")
    assert cfg.to_dict()["time_signature"] == "4/4"
    assert slugify("My Song!") == "my-song"
    assert slugify("Ünïcödé Sông") == "unicode-song" and slugify("日本の歌") == "song"
    # a GM program number, shown by its name
    data = copy.deepcopy(BASE)
    data["tracks"][0]["instrument"] = 40
    lead = parse_config(data, "x.yaml").tracks[0]
    assert lead.program == 40 and lead.instrument == "Violin"


def _error(mutate) -> str:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(UserError) as info:
        parse_config(data, "song.yaml")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("song.yaml: ")
    return msg


@pytest.mark.parametrize("mutate, parts", [
    (lambda d: d.update(tempo="fast"), ["tempo", "'fast'", "not a number", "30.0 to 300.0"]),
    (lambda d: d.update(tempo=1000), ["tempo", "1000", "out of range"]),
    (lambda d: d.update(time_signature="3/4"), ["time_signature", "'3/4'", "allowed: 4/4"]),
    (lambda d: d.update(sample_rate=12345), ["sample_rate", "12345", "16000"]),
    (lambda d: d.update(seed=-1), ["seed", "-1"]),
    (lambda d: d.update(colour="red"), ["colour", "unknown key", "allowed:"]),
    (lambda d: d["tracks"][0].update(volume_db=40), ["tracks[0].volume_db", "40", "-60.0 to 12.0"]),
    (lambda d: d["tracks"][0].update(pan="left"), ["tracks[0].pan", "'left'", "-1.0 to 1.0"]),
    (lambda d: d["tracks"][0].update(instrument="Flutee"), ["tracks[0].instrument", "'Flutee'", "Flute"]),
    (lambda d: d["tracks"][1].update(name="lead"), ["tracks[1].name", "unique"]),
    (lambda d: d["tracks"][1].update(name="."), ["tracks[1].name: '.' is not allowed", "starting with a letter"]),
    (lambda d: d["tracks"][1].update(volme_db=1), ["tracks[1].volme_db", "did you mean 'volume_db'"]),
    (lambda d: d["sections"][1].update(bars=0), ["sections[1].bars", "0", "1 to 512"]),
    (lambda d: d["sections"][1].update(bars=2.5), ["sections[1].bars", "2.5", "not an integer"]),
    (lambda d: d["sections"][0].update(chords=["C", "Hm"]), ["sections[0].chords[1]", "'Hm'"]),
    (lambda d: d["sections"][0].update(chords=["C", "Cxyz"]), ["sections[0].chords[1]", "quality"]),
    (lambda d: d["sections"][0].update(chords=["C", "F", "G"]), ["sections[0].chords", "3 chords", "4 bars"]),
    (lambda d: d["sections"][0].update(variation=1.5), ["sections[0].variation", "1.5", "0.0 to 1.0"]),
    (lambda d: d["sections"][0].update(morph=-0.1), ["sections[0].morph", "-0.1"]),
    (lambda d: d["sections"][0].pop("bars"), ["sections[0].bars", "missing"]),
    (lambda d: d.update(sections=[]), ["sections: an empty list is not allowed (expected a non-empty list"]),
    (lambda d: d.update(tracks=[]), ["tracks: an empty list is not allowed (expected a non-empty list of tracks)"]),
    (lambda d: d["sections"][0].update(chords=[]),
     ["sections[0].chords: an empty list is not allowed (expected a non-empty list of chord symbols)"]),
    (lambda d: d.update(title={"a": 1}), ["title: a mapping is not allowed (expected a non-empty string)"]),
    (lambda d: d.update(weights={"audio": 3}), ["weights.audio", "3"]),
    (lambda d: d["tracks"][0].update(instrument=200), ["tracks[0].instrument: 200", "0 to 127"]),
    (lambda d: d["tracks"][0].update(instrument="drums"),
     ["tracks[0].instrument: 'drums' is not allowed for source 'melody' (the drum kit plays the drums track only)"]),
    (lambda d: d["tracks"][1].update(instrument="Flute"),
     ["tracks[1].instrument: 'Flute' is not allowed for source 'drums' (the drums track plays the drum kit"]),
    (lambda d: d["tracks"][0].update(instrument="kit"),   # the kit's other names (program 128) too
     ["tracks[0].instrument: 'kit' is not allowed for source 'melody' (the drum kit plays the drums track only)"]),
    (lambda d: d["tracks"][0].update(instrument="Percussion"), ["tracks[0].instrument: 'Percussion' is not allowed"]),
])
def test_wrong_values_name_key_value_and_allowed(mutate, parts):
    msg = _error(mutate)
    for p in parts:
        assert p in msg, (p, msg)


def test_load_config_file_errors(tmp_path):
    with pytest.raises(UserError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml: not valid YAML at line"):
        load_config(bad)
    not_map = tmp_path / "list.yaml"
    not_map.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(UserError, match="expected a mapping"):
        load_config(not_map)


def test_a_key_given_twice_is_refused_and_merge_keys_may_be_overridden(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("title: x\ntracks:\n  - {name: lead, source: melody, volume_db: -3, volume_db: 0}\n"
                   "sections:\n  - {name: a, bars: 2}\n")
    with pytest.raises(UserError) as info:
        load_config(dup)
    assert str(info.value) == (f"{dup}: line 3: 'volume_db' is given twice in the same mapping "
                               f"(YAML would keep only the last)")
    merged = tmp_path / "merged.yaml"
    merged.write_text("title: x\ntracks:\n  - {name: lead, source: melody}\n"
                      "sections:\n  - &v {name: verse, bars: 2}\n  - {<<: *v, bars: 4}\n")
    assert [(s.name, s.bars) for s in load_config(merged).sections] == [("verse", 2), ("verse", 4)]


def test_chord_symbols():
    assert chord_pitch_classes("C") == (0, 4, 7)
    assert chord_pitch_classes("Am") == (9, 0, 4)
    assert chord_pitch_classes("G7") == (7, 11, 2, 5)
    assert chord_pitch_classes("Bbmaj7") == (10, 2, 5, 9)
    assert chord_pitch_classes("F#dim") == (6, 9, 0)
    assert chord_pitch_classes("C/E") == (0, 4, 7)
    assert chord_pitch_classes("C/Bb") == (0, 4, 7, 10)
    assert chord_pitch_classes("N") == ()
    with pytest.raises(ValueError):
        chord_pitch_classes("X7")
    # from QA: spellings users write (they were refused)
    assert chord_pitch_classes("G7sus4") == (7, 0, 2, 5)
    assert chord_pitch_classes("Cm9") == (0, 3, 7, 10, 2) and chord_pitch_classes("Cmaj9") == (0, 4, 7, 11, 2)
    assert chord_pitch_classes("Dm11") == (2, 5, 9, 0, 4, 7) and chord_pitch_classes("C13") == (0, 4, 7, 10, 2, 9)
    assert chord_pitch_classes("C-7") == chord_pitch_classes("Cm7") == (0, 3, 7, 10)
    assert chord_pitch_classes("CMaj7") == chord_pitch_classes("CM7") == (0, 4, 7, 11)
    assert chord_pitch_classes("Cmajor") == chord_pitch_classes("C") and chord_pitch_classes("CMIN") == (0, 3, 7)
    assert chord_pitch_classes("Bbø7") == chord_pitch_classes("Bbm7b5") == (10, 1, 4, 8)
    assert chord_pitch_classes("EbmMaj7") == (3, 6, 10, 2)
    assert all(chord_pitch_classes(nc) == () for nc in ("N.C.", "N.C", "n.c.", "nc", "NC", "-"))
    assert chord_pitch_classes("CM") == (0, 4, 7) and chord_pitch_classes("Cm") == (0, 3, 7)   # case matters there
    assert chord_pitch_classes("CM13") == (0, 4, 7, 11, 2, 9) and chord_pitch_classes("Cm13") == (0, 3, 7, 10, 2, 9)
    assert chord_pitch_classes("CM11") == (0, 4, 7, 11, 2, 5) and chord_pitch_classes("CmMAJ7") == (0, 3, 7, 11)
    with pytest.raises(ValueError, match="unknown chord quality 'M7b5'"):   # not read as m7b5
        chord_pitch_classes("CM7b5")
    with pytest.raises(ValueError, match=r"^'Cxyz': unknown chord quality 'xyz' \(known: nothing after the root "
                                         r"for major, maj, M, major, m, "):
        chord_pitch_classes("Cxyz")


def test_chords_to_array():
    arr = chords_to_array(("C", "C", "N", "G") * 2, 2, 4)
    assert arr.shape == (2, 4, 12) and arr.dtype == np.float32
    assert np.flatnonzero(arr[0, 0]).tolist() == [0, 4, 7]
    assert not arr[0, 2].any()
    assert np.flatnonzero(arr[1, 3]).tolist() == [2, 7, 11]
    assert not chords_to_array(None, 3, 4).any()


def test_instruments_and_weights(tmp_path):
    assert resolve_instrument("acoustic grand piano") == 0
    assert resolve_instrument("Violin") == 40
    assert resolve_instrument("bass") == 33
    with pytest.raises(ValueError, match="did you mean"):
        resolve_instrument("Violn")
    w = tmp_path / "m.safetensors"
    w.write_bytes(b"x")
    assert resolve_weights_path(str(tmp_path / "m"), "audio") == w.resolve()
    with pytest.raises(UserError, match=r"weights.drums: .*nothing.safetensors: no such weights file"):
        resolve_weights_path(str(tmp_path / "nothing.safetensors"), "drums")


def test_section_play_and_rest_are_checked():
    from fakes import SMALL_SONG

    def with_section(**kw):
        data = json.loads(json.dumps(SMALL_SONG))
        data["sections"][0].update(kw)
        return parse_config(data, "s.yaml")

    cfg = with_section(play=["Lead"], rest=["drums"])
    assert cfg.sections[0].play == ("lead",) and cfg.sections[0].rest == ("drums",)
    assert cfg.to_dict()["sections"][0]["play"] == ["lead"]
    with pytest.raises(UserError, match=r"s.yaml: sections\[0\].play\[1\]: 'bass' is not a track "
                                        r"\(allowed: lead, keys, drums\)"):
        with_section(play=["lead", "bass"])
    with pytest.raises(UserError, match=r"sections\[0\].rest: 'lead' is also in play"):
        with_section(play=["lead"], rest=["lead"])
    with pytest.raises(UserError, match=r"sections\[0\].rest: 3 is not allowed \(expected a list of track names\)"):
        with_section(rest=3)


@pytest.mark.parametrize("name", ["drums", "kit", "Drum Kit", "percussion"])
def test_the_drum_kit_by_any_of_its_names_on_the_drums_track(name):
    data = copy.deepcopy(BASE)
    data["tracks"][1]["instrument"] = name
    drums = parse_config(data, "song.yaml").tracks[1]
    assert (drums.program, drums.instrument) == (0, name)   # the MIDI file's standard kit


def test_the_highest_timbre_seed_and_its_default_morph_seed():
    data = copy.deepcopy(BASE)
    data["tracks"][0]["timbre_seed"] = 2**31 - 1
    data["tracks"][1]["timbre_seed"] = 5
    lead, drums = parse_config(data, "song.yaml").tracks
    assert (lead.timbre_seed, lead.morph_seed) == (2**31 - 1, 999)   # wraps round, stays a valid seed
    assert (drums.timbre_seed, drums.morph_seed) == (5, 1005)


def test_relative_weights_are_found_beside_the_config_and_the_defaults_in_the_project(tmp_path, monkeypatch):
    """A config's relative weights path was read from the working folder only, and a data/pretrained
    there stood in for the shipped weights (found by QA)."""
    from pipeline.config import DEFAULT_WEIGHTS

    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    (proj / "w").mkdir(parents=True)
    (proj / "w" / "mine.safetensors").write_bytes(b"x")
    (elsewhere / "data" / "pretrained").mkdir(parents=True)
    (elsewhere / "data" / "pretrained" / "symbolic_drums.safetensors").write_bytes(b"shadow")
    monkeypatch.chdir(elsewhere)
    assert resolve_weights_path("w/mine.safetensors", "symbolic", base=proj) == (proj / "w" / "mine.safetensors")
    with pytest.raises(UserError, match="no such weights file"):
        resolve_weights_path("w/mine.safetensors", "symbolic")
    # the shipped weights (a default, not written by the user) are the project's ...
    shipped = PROJECT_ROOT / DEFAULT_WEIGHTS["drums"]
    assert resolve_weights_path(DEFAULT_WEIGHTS["drums"], "drums", default=True) == shipped
    # ... while the same path written in a config is looked up in the working folder first
    assert resolve_weights_path(DEFAULT_WEIGHTS["drums"], "drums") == elsewhere / DEFAULT_WEIGHTS["drums"]
    cfg = parse_config(dict(copy.deepcopy(BASE), weights={"drums": "x.safetensors"}), "song.yaml")
    assert cfg.weights.given == ("drums",) and parse_config(copy.deepcopy(BASE), "song.yaml").weights.given == ()


def test_at_most_fifteen_different_instruments_besides_the_drums():
    # song.mid gives each program a MIDI channel of its own: 15 besides the drums' channel 10
    data = copy.deepcopy(BASE)
    data["tracks"] = [{"name": f"t{i}", "source": "melody", "instrument": 5 * i} for i in range(15)]
    data["tracks"] += [{"name": "again", "source": "piano", "instrument": 0}, {"name": "drums", "source": "drums"}]
    assert len(parse_config(data, "x.yaml").tracks) == 17       # 16 pitched tracks, 15 programs
    data["tracks"][15]["instrument"] = 1
    with pytest.raises(UserError, match=r"^x.yaml: tracks: 16 instruments besides the drums is too many \(allowed: "
                                        r"at most 15 different instruments"):
        parse_config(data, "x.yaml")
