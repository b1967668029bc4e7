"""Atomic writes: the target appears whole or not at all."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.fileio import atomic_path, atomic_write_text, check_json_out, staged_dir


def test_atomic_write_replaces_whole(tmp_path):
    target = tmp_path / "a" / "x.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.txt"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "x.wav"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".wav"
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_staged_dir_moves_everything_or_nothing(tmp_path):
    out = tmp_path / "song"
    with staged_dir(out) as stage:
        (stage / "stems").mkdir()
        (stage / "stems" / "bass.wav").write_bytes(b"b")
        (stage / "song.mid").write_bytes(b"m")
    assert (out / "song.mid").read_bytes() == b"m"
    assert (out / "stems" / "bass.wav").read_bytes() == b"b"

    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "broken") as stage:
            (stage / "song.mid").write_bytes(b"m")
            raise ValueError("generation failed")
    assert not (tmp_path / "broken").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_a_failed_staged_dir_removes_the_folders_it_made_above(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "kept" / "new" / "deep" / "seed-1") as stage:
            assert (tmp_path / "kept" / "new" / "deep").is_dir()
            (stage / "song.mid").write_bytes(b"m")
            raise ValueError("generation failed")
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())
    # a folder above that another writer filled meanwhile stays, with what it holds
    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "kept" / "new" / "deep" / "seed-2"):
            (tmp_path / "kept" / "new" / "other.txt").write_text("x")
            raise ValueError("generation failed")
    assert sorted(p.name for p in (tmp_path / "kept" / "new").iterdir()) == ["other.txt"]
    # success keeps them
    with staged_dir(tmp_path / "a" / "b" / "song") as stage:
        (stage / "song.mid").write_bytes(b"m")
    assert (tmp_path / "a" / "b" / "song" / "song.mid").read_bytes() == b"m"


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_check_json_out_refuses_what_cannot_be_written_and_leaves_no_probe(tmp_path):
    from pathlib import Path

    (tmp_path / "a_file").write_text("x")
    cases = [(tmp_path, "is a folder"), (tmp_path / "a_file" / "r.json", "a_file is a file, not a folder"),
             ("", "an empty path")]
    if Path("/proc/self").is_dir():   # root may write anywhere a permission check allows; /proc takes no file
        cases.append((Path("/proc/r.json"), "cannot write a file in /proc"))
    for path, says in cases:
        with pytest.raises(UserError, match="^--out ") as exc:
            check_json_out(path, "--out")
        assert says in str(exc.value), exc.value
    assert check_json_out(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"   # made at write time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_staged_dir_refuses_to_replace_a_folder_holding_the_users_files(tmp_path):
    out = tmp_path / "song"
    (out / "stems").mkdir(parents=True)
    (out / "stems" / "old.wav").write_bytes(b"w")          # an earlier run's stem: replaced
    with staged_dir(out, replaces=("stems",), owned_suffixes=(".wav",)) as stage:
        (stage / "stems").mkdir()
        (stage / "stems" / "new.wav").write_bytes(b"n")
    assert sorted(p.name for p in (out / "stems").iterdir()) == ["new.wav"]
    (out / "stems" / "mine.txt").write_text("keep")        # the user's: refused before any work
    with pytest.raises(UserError, match=r"stems: holds files this command did not write \(mine\.txt\); a new run "
                                        r"replaces that folder: move them, or give another --out"):
        with staged_dir(out, replaces=("stems",), owned_suffixes=(".wav",)):
            raise AssertionError("the writer ran")
    assert sorted(p.name for p in (out / "stems").iterdir()) == ["mine.txt", "new.wav"]


def test_staged_dir_refuses_a_file_where_it_writes_a_folder(tmp_path):
    out = tmp_path / "song"
    out.mkdir()
    (out / "stems").write_text("my notes")
    (out / "song.mid").write_bytes(b"old")
    with pytest.raises(UserError, match=r"song/stems: is a file, where this command writes a folder: move it, or "
                                        r"give another --out"):
        with staged_dir(out, replaces=("song.mid", "stems"), owned_suffixes=(".wav",), folders=("stems",)):
            raise AssertionError("the writer ran")
    assert (out / "stems").read_text() == "my notes" and (out / "song.mid").read_bytes() == b"old"
    assert sorted(p.name for p in out.iterdir()) == ["song.mid", "stems"]


def test_staged_dir_moves_the_marker_of_a_whole_output_last(tmp_path, monkeypatch):
    """A cache's meta.json is taken away first and moved in last: a run stopped while its files
    move in leaves no meta.json beside a mix of two runs' files (found by QA: a 2-bar meta.json
    over 4-bar train.npz)."""
    import os

    import pipeline.fileio as fileio

    out = tmp_path / "cache"
    with staged_dir(out, commit_last="meta.json") as stage:
        for name in ("a.npz", "meta.json", "z.npz"):
            (stage / name).write_text("old")
    moved = []
    real = os.replace

    def replace(src, dst):
        moved.append(Path(dst).name)
        if len(moved) == 2:
            raise KeyboardInterrupt   # stopped half-way through the moves
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out, commit_last="meta.json") as stage:
            for name in ("a.npz", "meta.json", "z.npz"):
                (stage / name).write_text("new")
    assert moved == ["a.npz", "z.npz"]
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "z.npz"]   # no meta.json: not a cache
    monkeypatch.setattr(fileio.os, "replace", real)
    with staged_dir(out, commit_last="meta.json") as stage:
        for name in ("a.npz", "meta.json", "z.npz"):
            (stage / name).write_text("new")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.npz": "new", "meta.json": "new", "z.npz": "new"}


def test_staged_dir_removes_the_stage_of_a_killed_run_and_keeps_a_live_ones(tmp_path):
    """A run killed outright (SIGKILL) cannot remove its staging folder; the next run into the same
    folder does, and leaves alone one whose process still runs (found by QA)."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)   # a process that has ended
    orphan = tmp_path / f".song.stage.{dead}.abc123"
    live = tmp_path / f".song.stage.{os.getpid()}.def456"
    other = tmp_path / f".other.stage.{dead}.ghi789"
    for folder in (orphan, live, other):
        folder.mkdir()
        (folder / "song.mid").write_bytes(b"half")
    with staged_dir(tmp_path / "song") as stage:
        (stage / "song.mid").write_bytes(b"whole")
    assert not orphan.exists() and live.exists() and other.exists()
    assert (tmp_path / "song" / "song.mid").read_bytes() == b"whole"


def test_staged_dir_stages_inside_an_existing_folder_and_moves_under_a_lock(tmp_path):
    """A mounted --out (another file system than its parent) failed: the stage sat beside it and
    os.replace cannot cross file systems. Two runs into one folder could mix their files. (Both
    found by QA.)"""
    import fcntl
    import os

    from pipeline.fileio import _locked

    import pipeline.fileio as fileio

    out = tmp_path / "song"
    out.mkdir()
    seen = []
    real = fileio._locked

    @contextlib.contextmanager
    def spy(folder):
        with real(folder):
            seen.append(("locked", sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))))
            yield
            seen.append(("unlocked", sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))))

    fileio._locked = spy
    try:
        with staged_dir(out, replaces=("a",)) as stage:
            assert stage.parent == out and stage.name.startswith(".song.stage.")
            (stage / "a").write_text("1")
    finally:
        fileio._locked = real
    assert seen == [("locked", []), ("unlocked", ["a"])]   # every move happens under the lock
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    with _locked(out):
        fd = os.open(out, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(out, os.O_RDONLY)   # released
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_staged_dir_goes_on_without_a_lock_and_sweeps_orphans_beside_and_inside(tmp_path, monkeypatch):
    """A file system without flock (ENOLCK) lost the finished run; a stage left beside a folder
    that exists by now was never removed; a sibling folder's stage was taken for an orphan (review)."""
    import errno
    import fcntl
    import subprocess
    import sys

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    out = tmp_path / "a"
    out.mkdir()
    beside = tmp_path / f".a.stage.{dead}.x1y2"
    inside = out / f".a.stage.{dead}.z3w4"
    sibling = tmp_path / f".a.stage.{dead}.stage.{dead}.q5r6"   # not "<pid>.<random>": left alone
    for folder in (beside, inside, sibling):
        folder.mkdir()
    with staged_dir(out) as stage:
        (stage / "song.mid").write_bytes(b"whole")
    assert (out / "song.mid").read_bytes() == b"whole"
    assert not beside.exists() and not inside.exists() and sibling.exists()


def test_a_link_where_a_folder_goes_is_refused_before_any_work(tmp_path):
    out = tmp_path / "song"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "stems").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match=r"song/stems: is a link, where this command writes a folder"):
        with staged_dir(out, replaces=("stems",), folders=("stems",)):
            raise AssertionError("the writer ran")
    assert (out / "stems").is_symlink()
