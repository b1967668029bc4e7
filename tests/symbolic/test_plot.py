from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from pipeline.cli import main as cli
from pipeline.errors import UserError
from symbolic.plot import cli_main, draw_multitrack, guess_track_map, plot_multitrack
from symbolic.roll import read_midi
from symbolic.trackmap import LPD5

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _lines_x(ax):
    return sorted(round(float(line.get_xdata()[0]), 6) for line in ax.get_lines())


def test_draw_panels_bars_and_pitch_names():
    import matplotlib.pyplot as plt

    roll = np.zeros((3, 4, 16, 84), np.uint8)
    roll[0, 0, 0:4, 60 - 24] = 100   # C4
    roll[2, 3, 8, 36 - 24] = 127     # C2
    fig = draw_multitrack(roll, ["melody", "bridge", "piano"], "t")
    try:
        axes = fig.axes
        assert [ax.get_ylabel() for ax in axes] == ["melody", "bridge", "piano"]
        assert all(_lines_x(ax) == [1.0, 2.0, 3.0] for ax in axes)  # bar lines between 4 bars
        assert axes[-1].get_xlabel() == "bar" and axes[-1].get_xlim() == (0.0, 4.0)
        assert [t.get_text() for t in axes[-1].get_xticklabels()] == ["1", "2", "3", "4"]
        assert "C4" in [t.get_text() for t in axes[0].get_yticklabels()]
        assert "C2" in [t.get_text() for t in axes[2].get_yticklabels()]
        img = axes[0].get_images()[0].get_array()
        assert img.shape == (84, 64) and img[60 - 24, 0] == pytest.approx(100 / 127)
        assert fig._suptitle.get_text() == "t"
    finally:
        plt.close(fig)


def test_plot_writes_png_and_checks_shapes(tmp_path):
    out = plot_multitrack(np.ones((2, 2, 16, 84), bool), ["a", "b"], tmp_path / "r.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="4 dimensions"):
        plot_multitrack(np.zeros((2, 16, 84)), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="1 track names for 2"):
        plot_multitrack(np.zeros((2, 1, 16, 84)), ["a"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]  # no temporary left behind


def test_cli_auto_track_map(make_midi, tmp_path, capsys):
    pop = make_midi("pop.mid", [("MELODY", 0, False, [(72, 0, 1, 90)]), ("PIANO", 0, False, [(48, 0, 4, 70)])])
    other = make_midi("lpd.mid", [("Guitar", 25, False, [(52, 0, 2, 90)]), ("Kit", 0, True, [(36, 0, 1, 90)])])
    # a file's own instruments, one row each under its own name (no empty rows of a known map's)
    assert guess_track_map(read_midi(pop)).names == ["MELODY", "PIANO"]
    auto = guess_track_map(read_midi(other))
    assert auto.names == ["Guitar", "Kit"] and auto.is_drum == [False, True] and auto.programs == [25, 0]
    drums = make_midi("popd.mid", [("MELODY", 0, False, [(72, 0, 1, 90)]), ("D", 0, True, [(36, 0, 1, 90)])])
    assert guess_track_map(read_midi(drums)).names == ["MELODY", "D"]
    out = tmp_path / "p.png"
    assert cli_main(["prog", str(pop), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert cli(["plot", "pianoroll", str(other), "--out", str(tmp_path / "q.png"), "--track-map", "lpd5"]) == 0
    assert (tmp_path / "q.png").read_bytes()[:8] == PNG_MAGIC
    assert capsys.readouterr().err == ""


def test_cli_notes_a_meter_drawn_on_four_four_bars_and_an_empty_picture(make_midi, tmp_path, capsys):
    waltz = make_midi("waltz.mid", [("Piano", 0, False, [(60, 0, 3, 90)])], time_signature=(3, 4))
    assert cli_main(["prog", str(waltz), "--out", str(tmp_path / "w.png")]) == 0
    assert capsys.readouterr().err == f"musegansynth: note: {waltz}: in 3/4; drawn on 4/4 bars\n"
    assert cli_main(["prog", str(waltz), "--out", str(tmp_path / "d.png"), "--track-map", "drums"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"musegansynth: note: {waltz}: no notes on the tracks of the 'drums' track map (drums); " \
                      f"the picture is empty"
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG_MAGIC


def test_cli_unreadable_midi(tmp_path, capsys, midi_writer):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"garbage" * 20)
    out = tmp_path / "bad.png"
    with pytest.raises(UserError, match="bad.mid: not a readable MIDI file"):
        cli_main(["prog", str(bad), "--out", str(out)])
    assert cli(["plot", "pianoroll", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.mid" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    good = midi_writer(tmp_path / "good.mid", [("Piano", 0, False, [(60, 0, 1, 90)])])
    with pytest.raises(UserError, match=r"--track-map 'zzz': unknown \(choose auto, file, lpd5, pop909, "):
        cli_main(["prog", str(good), "--out", str(out), "--track-map", "zzz"])
    assert cli_main(["prog", str(good), "--out", str(tmp_path / "a.png"), "--track-map", "AUTO"]) == 0
    (tmp_path / "a.png").unlink()
    assert not out.exists()


def test_titles_and_names_are_drawn_as_written_not_as_math(tmp_path):
    """matplotlib reads "$...$" as a formula: an unbalanced one used to fail the drawing."""
    from pipeline.report import plot_pianoroll
    from symbolic.roll import Multitrack
    from symbolic.trackmap import TrackMap, TrackSpec

    roll = np.zeros((2, 2, 16, 84), bool)
    roll[0, 0, :4, 40] = True
    out = plot_multitrack(roll, ["$a", "b$_$"], tmp_path / "r.png", title="Rich $_$ Kid")
    assert out.read_bytes()[:8] == PNG_MAGIC
    fig = draw_multitrack(roll, ["$a", "b$_$"], title="Price $5 and $6")
    assert fig._suptitle.get_text() == "Price $5 and $6" and not fig._suptitle.get_parse_math()
    mt = Multitrack(roll.astype(np.uint8) * 90, roll, TrackMap((TrackSpec("lead", 0), TrackSpec("pad", 48)), name="t"))
    png = plot_pianoroll(mt, tmp_path / "song.png", sections=[{"name": "$\\frac{$", "start_bar": 0}],
                         title="Rich $_$ Kid")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "song.png"]


def test_cli_names_what_it_leaves_out_and_refuses_what_it_cannot_draw(make_midi, tmp_path, capsys):
    """From QA: a "Piano" beside other parts made auto choose POP909 and leave them out silently;
    notes outside the drawn pitches went silently too; a stray note far away ran out of memory."""
    mixed = make_midi("mixed.mid", [("Piano", 0, False, [(60, 0, 1, 90)]), ("Violin", 40, False, [(67, 0, 1, 90)])])
    assert guess_track_map(read_midi(mixed)).names == ["Piano", "Violin"]
    odd = make_midi("odd.mid", [("MELODY", 0, False, [(72, 0, 1, 90)]), ("PIANO", 0, False, [(48, 0, 4, 70)]),
                                ("Sitar", 104, False, [(60, 0, 1, 90), (62, 1, 2, 90)]),
                                ("Steel", 1, False, [(21, 0, 1, 90), (108, 1, 2, 90)])])
    assert cli_main(["prog", str(odd), "--out", str(tmp_path / "o.png"), "--track-map", "pop909"]) == 0
    assert capsys.readouterr().err == (
        f"musegansynth: note: {odd}: 4 notes of Sitar, Steel are on no track of the 'pop909' track map (melody, "
        f"bridge, piano): not drawn (choose another with --track-map)\n")
    assert cli_main(["prog", str(odd), "--out", str(tmp_path / "l.png"), "--track-map", "lpd5"]) == 0
    assert capsys.readouterr().err == (
        f"musegansynth: note: {odd}: 2 notes outside MIDI 24-107 (or before bar 1): not drawn\n")
    far = make_midi("far.mid", [("Piano", 0, False, [(60, 0, 1, 90), (60, 4 * 5000, 4 * 5000 + 1, 90)])])
    with pytest.raises(UserError, match=r"far.mid: 5001 bars of 4/4 are too many to draw \(at most 4096\)"):
        cli_main(["prog", str(far), "--out", str(tmp_path / "f.png")])
    for bad, says in [("", "--out '': the picture is a PNG; name it *.png"),
                      (str(tmp_path / ".png"), f"--out {tmp_path / '.png'}: give the picture a name before .png")]:
        with pytest.raises(UserError) as info:
            cli_main(["prog", str(mixed), "--out", bad])
        assert str(info.value) == says
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.mid", "l.png", "mixed.mid", "o.png", "odd.mid"]


def test_auto_draws_a_song_with_its_own_tracks(make_midi, tmp_path, capsys):
    """From QA: generate's song.mid with tracks lead, lead2, kit1, kit2 was drawn as LPD-5 families
    (the flute as "Strings", both kits in one row, empty Piano / Guitar / Bass rows)."""
    from symbolic.roll import midi_to_multitrack
    from symbolic.trackmap import file_track_map

    song = make_midi("song.mid", [("lead", 73, False, [(72, 0, 1, 90)]), ("lead", 73, False, [(76, 1, 2, 90)]),
                                  ("", 0, True, [(36, 0, 1, 90)]), ("kit2", 0, True, [(38, 1, 2, 90)]),
                                  ("", 41, False, []), ("", 33, False, [(40, 0, 4, 80)])])
    pm = read_midi(song)
    tm = guess_track_map(pm)
    assert tm.names == ["lead", "lead (2)", "drums", "kit2", "Electric Bass (finger)"]
    assert tm.assign(pm.instruments) == [0, 1, 2, 3, 4]      # (pretty_midi reads no instrument without notes)
    pm.instruments.insert(1, pretty_midi.Instrument(program=41))
    assert file_track_map(pm.instruments).assign(pm.instruments) == [0, None, 1, 2, 3, 4]
    pm.instruments.pop(1)
    mt = midi_to_multitrack(pm, tm)
    assert [int(mt.roll[t].astype(bool).sum()) for t in range(5)] == [4, 4, 1, 1, 16]
    assert cli_main(["prog", str(song), "--out", str(tmp_path / "s.png")]) == 0
    assert capsys.readouterr().err == ""
    many = make_midi("many.mid", [(f"p{i}", i, False, [(60, 0, 1, 90)]) for i in range(17)])
    assert guess_track_map(read_midi(many)) is LPD5                    # 17 rows: the five families
    assert len(file_track_map(read_midi(many).instruments)) == 17      # --track-map file: all of them
    assert cli_main(["prog", str(many), "--out", str(tmp_path / "m.png"), "--track-map", "file"]) == 0
    empty = make_midi("empty.mid", [("Piano", 0, False, [])])
    with pytest.raises(UserError, match="--track-map file: no instrument of the file has notes"):
        cli_main(["prog", str(empty), "--out", str(tmp_path / "e.png"), "--track-map", "file"])
    with pytest.raises(ValueError, match="of a file of 5 instruments, got 1"):
        tm.assign(pm.instruments[:1])
