"""Bad input at the command line: one line on stderr, exit status 2, no traceback, nothing half-written.

Each test is a case a user really meets (an output path that is a file, a name too long for the
file system, a usage error, ``kill`` in the middle of a run, ...). Models are the fakes of
``tests/pipeline/fakes.py``, so every test runs in about a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cli_checks

from cli_checks import assert_user_error, run_cli  # noqa: E402
from fakes import SMALL_SONG, FakeComposer, fake_drum_composer  # noqa: E402
from pipeline import cli  # noqa: E402
from pipeline.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> list[str]:
    """Temporary files and staging folders the atomic writers would leave in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- output paths

def test_generate_out_is_an_existing_file(tmp_path, small_config_path, patch_load_models, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    rc, err = run_cli(capsys, "generate", small_config_path, "--renderer", "none", "--out", target)
    assert_user_error(rc, err, str(target), "file")
    assert target.read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_generate_out_below_a_file(tmp_path, small_config_path, patch_load_models, capsys):
    (tmp_path / "afile").write_text("x")
    rc, err = run_cli(capsys, "generate", small_config_path, "--renderer", "none", "--out", tmp_path / "afile" / "song")
    assert_user_error(rc, err, str(tmp_path / "afile"), "not a folder")
    assert leftovers(tmp_path) == []


def test_generate_count_out_is_an_existing_file(tmp_path, small_config_path, patch_load_models, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    rc, err = run_cli(capsys, "generate", small_config_path, "--renderer", "none", "--count", "2", "--out", target)
    assert_user_error(rc, err, str(target))
    assert target.read_text() == "mine"


def test_generate_empty_out_is_refused(tmp_path, small_config_path, patch_load_models, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = run_cli(capsys, "generate", small_config_path, "--renderer", "none", "--out", "")
    assert_user_error(rc, err, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]  # no out/<slug> made instead
    midi = _tiny_midi(tmp_path / "m.mid")          # accompany alike (it used to fall back to out/m-accompanied)
    rc, err = run_cli(capsys, "accompany", midi, "--track", "#0", "--renderer", "none", "--out", "")
    assert_user_error(rc, err, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mid", "small.yaml"]


def _tiny_midi(path: Path) -> Path:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0, name="piano")
    inst.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.5))
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def test_picture_out_is_a_folder(tmp_path, capsys):
    midi = _tiny_midi(tmp_path / "a.mid")
    out = tmp_path / "pictures"
    out.mkdir()
    rc, err = run_cli(capsys, "plot", "pianoroll", midi, "--out", out)
    assert_user_error(rc, err, str(out), "folder")
    assert "stage" not in err and f"{tmp_path}/." not in err, err  # names the user's path, not a temporary one
    assert leftovers(tmp_path) == [] and list(out.iterdir()) == []


def test_picture_out_below_a_file(tmp_path, capsys):
    midi = _tiny_midi(tmp_path / "a.mid")
    (tmp_path / "afile").write_text("x")
    rc, err = run_cli(capsys, "plot", "pianoroll", midi, "--out", tmp_path / "afile" / "x.png")
    assert_user_error(rc, err, str(tmp_path / "afile"), "not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_atomic_path_and_staged_dir_raise_user_errors(tmp_path):
    from pipeline.fileio import atomic_write_text, staged_dir

    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a folder"):
        atomic_write_text(tmp_path, "text")
    with pytest.raises(UserError, match="afile is a file"):
        atomic_write_text(tmp_path / "afile" / "x.txt", "text")
    with pytest.raises(UserError, match="exists and is a file"):
        with staged_dir(tmp_path / "afile"):
            pass
    assert leftovers(tmp_path) == []


def test_long_output_names_fit_the_file_system(tmp_path):
    """A 250-character name is a valid file name; its temporary file / staging folder must be too."""
    from pipeline.fileio import atomic_write_text, staged_dir

    for name in ("n" * 250, "é" * 125):  # 250 bytes of UTF-8 either way
        atomic_write_text(tmp_path / name, "ok")
        assert (tmp_path / name).read_text() == "ok"
    with staged_dir(tmp_path / ("d" * 250)) as stage:
        (stage / "song.mid").write_text("m")
    assert (tmp_path / ("d" * 250) / "song.mid").read_text() == "m"
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- config values

def test_long_track_name_is_a_config_error(tmp_path, patch_load_models, capsys):
    doc = dict(SMALL_SONG, tracks=[dict(SMALL_SONG["tracks"][0], name="a" * 300), *SMALL_SONG["tracks"][1:]])
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(doc))
    rc, err = run_cli(capsys, "generate", path, "--renderer", "none", "--out", tmp_path / "o")
    assert_user_error(rc, err, str(path), "tracks[0].name", "at most")
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


def test_long_title_gives_a_usable_default_folder(tmp_path, patch_load_models, capsys, monkeypatch):
    from pipeline.config import slugify

    assert len(slugify("a" * 300)) <= 80
    assert slugify("My Song!") == "my-song"
    doc = dict(SMALL_SONG, title="A very long title " * 20)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    rc, err = run_cli(capsys, "generate", path, "--renderer", "none")
    assert rc == 0, err
    (folder,) = (tmp_path / "out").iterdir()
    assert (folder / "song.mid").is_file() and len(folder.name) <= 80


def test_unknown_instrument_suggestions_are_not_repeated():
    from pipeline.config import resolve_instrument

    with pytest.raises(ValueError) as exc:
        resolve_instrument("Flüte")
    hint = str(exc.value).split("did you mean", 1)[1]
    assert hint.count("'flute'") == 1, hint


def test_weights_drums_that_are_not_drums_are_named_as_such(tmp_path):
    """weights.drums pointing at a second pitched composer: the error names weights.drums (it named
    the drums source as unknown, with the pitched tracks listed twice before that)."""
    from pipeline.config import parse_config
    from pipeline.generate import Models, compose

    config = parse_config(SMALL_SONG, "small.yaml")
    models = Models(FakeComposer(), FakeComposer(), None, {})
    with pytest.raises(UserError) as exc:
        compose(models, config, 1, "cpu")
    assert str(exc.value) == "small.yaml: weights.drums: not a drums model (its tracks: melody, bridge, piano)"


def test_missing_weights_message_names_the_config(tmp_path):
    from pipeline.config import parse_config
    from pipeline.generate import load_models

    config = parse_config(dict(SMALL_SONG, weights={"symbolic": str(tmp_path / "nope.safetensors")}), "song.yaml")
    with pytest.raises(UserError) as exc:
        load_models(config, "cpu", "none")
    assert str(exc.value).startswith("song.yaml: weights.symbolic:"), exc.value


# --------------------------------------------------------------------------- what a run leaves behind

def test_regenerating_without_audio_removes_the_old_audio(tmp_path):
    """song.wav / stems of an earlier run in the same folder would not match the new song.mid."""
    from pipeline.config import parse_config
    from pipeline.generate import Models, generate_song

    config = parse_config(SMALL_SONG, "small.yaml")
    out = tmp_path / "song"
    out.mkdir()
    (out / "song.wav").write_bytes(b"old song")
    (out / "song.flac").write_bytes(b"old song")
    (out / "stems").mkdir()
    (out / "stems" / "old.wav").write_bytes(b"old stem")
    (out / "my-notes.txt").write_text("the user's own file")
    generate_song(config, out, models=Models(FakeComposer(), fake_drum_composer(), None, {}), renderer="none")
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "my-notes.txt", "pianoroll.png", "song.json",
                                                      "song.mid"]


def test_sigterm_leaves_no_staging_folder(tmp_path):
    """``kill`` (SIGTERM) during a run: the staged files are removed, one line, status 143."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from pipeline import cli
        from pipeline.fileio import staged_dir

        def run(module_name, name, argv):
            with staged_dir(Path({str(tmp_path / 'out')!r})) as stage:
                (stage / "song.mid").write_bytes(b"half")
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # the handler's exception ends the sleep at once
            return 0

        cli._run = run
        sys.exit(cli.main(["generate"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


# --------------------------------------------------------------------------- usage errors and OS errors

def test_usage_error_is_one_line(capsys):
    rc, err = run_cli(capsys, "generate", "--seed", "abc")
    assert_user_error(rc, err, "--seed", "abc", "--help")


def test_unknown_subcommand_is_one_line(capsys):
    rc, err = run_cli(capsys, "no-such-command")
    assert_user_error(rc, err, "no-such-command")


def test_unknown_target_of_a_group_is_an_error(capsys):
    rc, err = run_cli(capsys, "data", "bogus")  # used to print the group's help and exit 0
    assert_user_error(rc, err, "bogus", "symbolic", "notes")


def test_help_still_prints_usage(capsys):
    import argparse

    with pytest.raises(SystemExit) as exc:
        cli.main(["generate", "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out
    assert not hasattr(argparse.ArgumentParser.error, "__wrapped__")  # the one-line wrapper is undone after the run


def test_train_usage_error_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "symbolic", "fit", "--config",
                           str(ROOT / "configs" / "symbolic" / "debug.yaml"), "--trainer.max_steps", "abc"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "trainer.max_steps" in proc.stderr and "abc" in proc.stderr, proc.stderr


@pytest.mark.parametrize("exc", [FileExistsError(17, "File exists", "/somewhere/x"),
                                 OSError(36, "File name too long", "/somewhere/" + "y" * 300)])
def test_os_errors_naming_a_file_are_user_errors(exc, monkeypatch, capsys):
    def boom(module_name, name, argv):
        raise exc

    monkeypatch.setattr(cli, "_run", boom)
    rc, err = run_cli(capsys, "generate")
    assert_user_error(rc, err, "/somewhere/", exc.strerror)


# --------------------------------------------------------------------------- generate --count

def test_more_devices_than_songs_is_a_user_error(tmp_path, small_config_path, patch_load_models, capsys, monkeypatch):
    import lightning

    def no_launch(*args, **kwargs):  # DDP would start processes that run this test's command line again
        raise AssertionError("Trainer.predict reached with more devices than songs")

    monkeypatch.setattr(lightning.Trainer, "predict", no_launch)
    rc, err = run_cli(capsys, "generate", small_config_path, "--renderer", "none", "--count", "2", "--devices", "3",
                       "--device", "cpu", "--out", tmp_path / "batch")
    assert_user_error(rc, err, "--devices 3", "2 songs")
    assert not (tmp_path / "batch").exists()
