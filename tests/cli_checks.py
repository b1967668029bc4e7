"""Helpers of the command-line tests (tests/pipeline/test_cli_robustness.py, tests/test_bad_inputs.py)."""

from __future__ import annotations

from pipeline import cli


def run_cli(capsys, *argv) -> tuple[int, str]:
    """``musegansynth ARGV`` in process: (exit status, stderr)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    return rc, capsys.readouterr().err


def assert_user_error(rc: int, err: str, *words: str) -> None:
    """Exit 2 and one line ``musegansynth...: error: ...`` (no traceback, no "internal error")
    holding every one of ``words``."""
    assert rc == 2, (rc, err)
    assert err.startswith("musegansynth") and ": error: " in err, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "internal error" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
