from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from pipeline.errors import UserError
from symbolic.trackmap import DRUMS, LPD5, POP909, POP909_DRUMS, SATB, TrackMap, TrackSpec, get_track_map


def inst(name="", program=0, is_drum=False):
    return NS(name=name, program=program, is_drum=is_drum)


def test_lpd5_program_families():
    names = LPD5.names
    assert names == ["Drums", "Piano", "Guitar", "Bass", "Strings"]
    cases = {0: "Piano", 7: "Piano", 24: "Guitar", 31: "Guitar", 32: "Bass", 39: "Bass", 8: "Strings",
             48: "Strings", 95: "Strings", 104: "Strings", 111: "Strings"}
    got = LPD5.assign([inst(program=p) for p in cases])
    assert [names[i] for i in got] == list(cases.values())
    # programs 96-103 and 112-127 belong to no LPD-5 track; drums go to Drums whatever their program
    assert LPD5.assign([inst(program=96), inst(program=103), inst(program=112), inst(program=127)]) == [None] * 4
    assert LPD5.assign([inst(program=33, is_drum=True)]) == [0]
    assert LPD5.is_drum == [True, False, False, False, False]
    assert LPD5.drum_tracks == (0,)


def test_pop909_by_name_and_drums():
    got = POP909.assign([inst("PIANO"), inst("MELODY"), inst("BRIDGE"), inst("Other"), inst("", 0, True)])
    assert got == [2, 0, 1, None, None]
    got = POP909_DRUMS.assign([inst(" melody "), inst("drum kit", 0, True), inst("strings", 48)])
    assert got == [0, 3, None]


def test_satb_by_name_then_order_and_drums_map():
    assert SATB.assign([inst("Bass"), inst("Soprano"), inst("Alto"), inst("Tenor")]) == [3, 0, 1, 2]
    assert SATB.assign([inst("P1"), inst("P2"), inst("P3"), inst("P4"), inst("P5")]) == [0, 1, 2, 3, None]
    # named by first word, other parts left out once the four voices are found
    assert SATB.assign([inst("Trumpet 1"), inst("Soprano Oboe 1 Violin1"), inst("Alto Oboe 2"),
                        inst("Tenor Viola"), inst("Bass Continuo")]) == [None, 0, 1, 2, 3]
    # a track's own name reads back to it, whatever the program (files this project writes)
    assert LPD5.assign([inst("Bass", 0), inst("Drums", 0, False)]) == [3, 1]
    assert DRUMS.assign([inst("", 0, True), inst("Piano", 0)]) == [0, None]


def test_get_track_map_names_and_errors():
    assert get_track_map("LPD-5") is LPD5
    assert get_track_map("pop909-drums") is POP909_DRUMS
    assert get_track_map(SATB) is SATB
    with pytest.raises(UserError, match="track map 'nope'.*lpd5"):
        get_track_map("nope")
    assert LPD5.index("bass") == 3
    with pytest.raises(UserError, match="track 'cello'"):
        LPD5.index("cello")
    with pytest.raises(ValueError):
        TrackMap((TrackSpec("a", 0), TrackSpec("a", 1)))
