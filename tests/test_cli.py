"""The command line's contract: every subcommand exists, says what it does, and bad input is one line + exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline import cli
from pipeline.errors import UserError


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    try:
        rc = cli.main([*name.split(), "--help"])
    except SystemExit as exc:  # argparse/LightningCLI exit after printing help
        rc = exc.code
    out = capsys.readouterr().out
    assert rc == 0, (name, rc)
    assert "usage:" in out, out


def test_top_level_help_lists_the_contract(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ["generate", "render", "accompany", "train", "data", "evaluate", "explain-phase", "plot"]:
        assert word in out, word


@pytest.mark.parametrize("argv, what", [([], "a COMMAND is needed"), (["train"], "'train' needs a TARGET"),
                                        (["data"], "'data' needs a TARGET"), (["export"], "'export' needs a TARGET")])
def test_a_missing_command_or_target_shows_the_help_and_exits_2(argv, what, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "usage:" in captured.out
    assert captured.err == f"musegansynth: error: {what} (see the list above)\n"


def test_user_error_is_one_line_and_status_2(monkeypatch, capsys):
    def boom(module_name, name, argv):
        raise UserError("song.yaml: tempo: 'fast' is not a number\n(between 40 and 240)")

    monkeypatch.setattr(cli, "_run", boom)
    rc = cli.main(["generate", "song.yaml"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1, err
    assert err.startswith("musegansynth: error: song.yaml: tempo:"), err


def test_missing_file_is_status_2_not_a_traceback(monkeypatch, capsys):
    def missing(module_name, name, argv):
        open("/nonexistent/dir/x.mid", "rb")

    monkeypatch.setattr(cli, "_run", missing)
    assert cli.main(["render", "/nonexistent/dir/x.mid"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/dir/x.mid" in err and "Traceback" not in err, err


def test_unknown_command_exits_2():
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr


def test_arguments_reach_the_subcommand_in_order(monkeypatch):
    seen = {}

    def record(module_name, name, argv):
        seen.update(module=module_name, name=name, argv=argv)
        return 0

    monkeypatch.setattr(cli, "_run", record)
    assert cli.main(["data", "notes", "--out", "X", "--limit", "5"]) == 0
    assert seen == {"module": "audio.notes", "name": "data notes", "argv": ["--out", "X", "--limit", "5"]}
    assert cli.main(["generate", "--seed", "3", "song.yaml"]) == 0
    assert seen["argv"] == ["--seed", "3", "song.yaml"] and seen["module"] == "pipeline.generate"


def test_group_without_target_shows_usage():
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "train"], capture_output=True, text=True)
    assert proc.returncode != 0 or "usage" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("value, raises", [("0", False), ("", False), ("false", False), ("off", False),
                                           ("1", True), ("yes", True)])
def test_debug_variable_off_values_keep_the_one_line_internal_error(monkeypatch, capsys, value, raises):
    """MUSEGANSYNTH_DEBUG=0 turned the traceback on: any non-empty value did (found by QA)."""
    from pipeline.cli import _internal_error

    monkeypatch.setenv("MUSEGANSYNTH_DEBUG", value)
    if raises:
        with pytest.raises(RuntimeError, match="boom"):
            _internal_error(RuntimeError("boom"))
    else:
        assert _internal_error(RuntimeError("boom")) == 1
        assert capsys.readouterr().err.startswith("musegansynth: internal error: RuntimeError: boom")


def test_a_full_disk_is_one_line_and_exit_2(monkeypatch, capsys):
    """From fuzzing: a full disk while plot wrote its PNG was an 'internal error' with exit 1."""
    import errno
    import os

    import pipeline.cli as cli

    def full(module_name, name, argv):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out/p.png")

    monkeypatch.setattr(cli, "_run", full)
    assert cli.main(["plot", "pianoroll", "x.mid"]) == 2
    assert capsys.readouterr().err == ("musegansynth: error: out/p.png: no space left on the disk (nothing was kept; "
                                       "free some and run it again)\n")
