from __future__ import annotations

import pytest

from audio.families import (DRUM_PROGRAM, FAMILIES, FamilyMatch, drum_key_name, drum_key_names, family_default_program,
                            family_index, family_programs, instrument_name_to_program, program_name,
                            program_to_family)
from pipeline.errors import UserError


def test_families_order_matches_nsynth_labels():
    # NSynth's instrument_family numbers: bass 0 ... vocal 10; drums is ours at 11.
    assert FAMILIES[:11] == ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                             "synth_lead", "vocal"]
    assert FAMILIES[11] == "drums" and len(FAMILIES) == 12


@pytest.mark.parametrize("program,family", [
    (0, "keyboard"), (7, "keyboard"), (8, "mallet"), (12, "mallet"), (16, "organ"), (22, "reed"), (24, "guitar"),
    (31, "guitar"), (32, "bass"), (39, "bass"), (40, "string"), (46, "string"), (48, "string"), (51, "string"),
    (52, "vocal"), (54, "vocal"), (56, "brass"), (63, "brass"), (64, "reed"), (71, "reed"), (72, "flute"),
    (79, "flute"), (80, "synth_lead"), (88, "synth_lead"), (95, "synth_lead"), (105, "guitar"), (110, "string"),
])
def test_program_to_family_gm_groups(program, family):
    match = program_to_family(program)
    assert match == FamilyMatch(family, True), (program, match)
    assert match.index == FAMILIES.index(family)


def test_inexact_programs_are_flagged():
    for program in range(120, 128):
        assert program_to_family(program).exact is False
    assert program_to_family(47).exact is False  # timpani
    assert program_to_family(100).family == "synth_lead" and not program_to_family(100).exact
    inexact = [p for p in range(128) if not program_to_family(p).exact]
    assert 15 <= len(inexact) <= 35, inexact  # most GM programs have a real family


def test_every_program_maps_to_a_melodic_family():
    for program in range(128):
        match = program_to_family(program)
        assert match.family in FAMILIES and match.family != "drums"
    for family in FAMILIES:
        assert family_programs(family), family
    assert sum(len(family_programs(f)) for f in FAMILIES if f != "drums") == 128


def test_drums():
    assert program_to_family(0, is_drum=True) == FamilyMatch("drums", True)
    assert program_to_family(DRUM_PROGRAM).family == "drums"
    assert family_default_program("drums") == DRUM_PROGRAM
    assert instrument_name_to_program("Drums") == DRUM_PROGRAM
    assert program_name(DRUM_PROGRAM) == "Drums"


def test_out_of_range_program():
    with pytest.raises(UserError, match="program 129"):
        program_to_family(129)
    with pytest.raises(UserError, match="program -1"):
        program_to_family(-1)


def test_default_programs_belong_to_their_family():
    for family in FAMILIES:
        program = family_default_program(family)
        assert program_to_family(program).family == family, (family, program)
    with pytest.raises(UserError, match="'banjo'.*expected one of"):
        family_index("banjo")


@pytest.mark.parametrize("name,program", [
    ("Acoustic Grand Piano", 0), ("acoustic grand piano", 0), ("TRUMPET", 56), ("trumpet", 56), ("piano", 0),
    ("violin", 40), ("Electric Bass (finger)", 33), ("electric_bass_finger", 33), ("Gunshot", 127), ("drums", 128),
    ("5", 5), (71, 71),
])
def test_instrument_name_to_program(name, program):
    assert instrument_name_to_program(name) == program


def test_unknown_name_lists_close_matches():
    with pytest.raises(UserError, match=r"'trumpte'.*'Trumpet'"):
        instrument_name_to_program("trumpte")
    with pytest.raises(UserError, match=r"'viloin'.*'Violin'"):
        instrument_name_to_program("viloin")
    with pytest.raises(UserError, match="unknown instrument name"):
        instrument_name_to_program("zzzzqqq")
    with pytest.raises(UserError, match="program must be"):
        instrument_name_to_program(200)


def test_drum_key_names():
    names = drum_key_names()
    assert sorted(names) == list(range(35, 82))
    assert names[35] == "Acoustic Bass Drum" and names[38] == "Acoustic Snare" and names[42] == "Closed Hi Hat"
    assert names[81] == "Open Triangle"
    assert drum_key_name(36) == "Bass Drum 1"
    with pytest.raises(UserError, match="drum key 34"):
        drum_key_name(34)
