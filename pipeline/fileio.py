"""Atomic file output (nothing half-written is ever left behind) and a checked JSON reader."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Iterable, Iterator

from pipeline.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Longest part (in bytes) of a target's name kept in the name of its temporary file or staging folder (the
#: temporary name adds a dot, a random part and a suffix; file names are at most 255 bytes).
_TEMP_NAME_CHARS = 120


def _temp_prefix(name: str) -> str:
    """``.<name>.``, the name cut to :data:`_TEMP_NAME_CHARS` bytes of UTF-8 (whole characters)."""
    cut = name.encode("utf-8", "surrogateescape")[:_TEMP_NAME_CHARS].decode("utf-8", "ignore")
    return f".{cut}."


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def nearest_existing_is_folder(folders, message) -> None:
    """UserError(``message(folder)``) when the first of ``folders`` that exists is not a folder."""
    for above in folders:
        if above.exists():
            if not above.is_dir():
                raise UserError(message(above))
            return


def _ensure_parent(path: Path, what: str) -> None:
    """Create ``path``'s parent folders; UserError naming ``path`` when that is impossible
    (a parent is a file, no permission, read-only file system, name too long)."""
    parent = path.parent
    nearest_existing_is_folder([parent, *parent.parents],
                                lambda above: f"{path}: cannot write the {what} here: {above} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the folder {exc.filename or parent} ({_why(exc)})") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` defaults to the suffix of ``path`` (some writers choose the format from it).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder (expected a file name)")
    _ensure_parent(path, "file")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name),
                                   suffix=suffix if suffix is not None else path.suffix, dir=path.parent)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({_why(exc)})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        try:
            os.replace(tmp_path, path)
        except OSError as exc:
            raise UserError(f"{path}: cannot write ({_why(exc)})") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_png(fig, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Write a matplotlib figure to ``path`` as a PNG, atomically.

    Text the user wrote (a title, a section or track name) may hold characters the font lacks
    (emoji, CJK): matplotlib draws a box for each and warns on stderr, once per glyph; those
    warnings are left out here, the box is drawn.
    """
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp, missing_glyphs_quiet():
        fig.savefig(tmp, format="png", **savefig_kwargs)
    return path


@contextlib.contextmanager
def missing_glyphs_quiet() -> Iterator[None]:
    """Leave out matplotlib's warnings of characters its font lacks (laying out a figure warns too)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from (current )?font")
        yield


def check_out_dir(final_dir: str | os.PathLike) -> Path:
    """``final_dir`` as a Path, after checking that it can be an output folder: UserError when it,
    or the nearest of its parents that exists, is a file rather than a folder (or it is empty)."""
    if str(final_dir) == "":
        raise UserError("--out '': an empty path is not an output folder")
    final_dir = Path(final_dir)
    if final_dir.exists() and not final_dir.is_dir():
        raise UserError(f"{final_dir}: exists and is a file, not a folder (give --out a folder)")
    nearest_existing_is_folder(final_dir.parents, lambda above: f"{final_dir}: cannot make the output folder: "
                                                                  f"{above} is a file, not a folder")
    return final_dir


def check_out_dir_entries(final_dir: str | os.PathLike, replaces: Iterable[str] = (),
                           owned_suffixes: Iterable[str] | None = None, folders: Iterable[str] = ()) -> Path:
    """:func:`check_out_dir`, then the checks :func:`staged_dir` makes of the entries it would
    replace (see there); a writer of several folders runs it on each before writing any."""
    final_dir = check_out_dir(final_dir)
    for name in folders:
        entry = final_dir / name
        if entry.is_symlink():
            raise UserError(f"{entry}: is a link, where this command writes a folder: move it, or give another --out")
        if entry.exists() and not entry.is_dir():
            raise UserError(f"{entry}: is a file, where this command writes a folder: move it, or give another --out")
    if owned_suffixes is not None:
        owned = {x.lower() for x in owned_suffixes}
        for name in replaces:
            folder = final_dir / name
            if folder.is_dir() and not folder.is_symlink():
                foreign = sorted(str(f.relative_to(folder)) for f in folder.rglob("*")
                                 if not f.is_dir() and f.suffix.lower() not in owned)
                if foreign:
                    raise UserError(f"{folder}: holds files this command did not write ({', '.join(foreign[:3])}"
                                    f"{', ...' if len(foreign) > 3 else ''}); a new run replaces that folder: "
                                    f"move them, or give another --out")
    return final_dir


@contextlib.contextmanager
def staged_dir(final_dir: str | os.PathLike, replaces: Iterable[str] = (),
               owned_suffixes: Iterable[str] | None = None, folders: Iterable[str] = (),
               commit_last: str | None = None) -> Iterator[Path]:
    """Yield an empty staging folder; on success its entries are moved into ``final_dir``.

    On failure the staging folder is deleted and ``final_dir`` gets nothing new. Entries that
    already exist in ``final_dir`` with the same name are replaced; so are the entries named in
    ``replaces`` that this run did not write (a writer's own outputs left by an earlier run, e.g.
    ``song.wav`` beside a new ``song.mid`` made without audio): they are removed. Other entries
    of ``final_dir`` are left as they are. UserError (naming ``final_dir``) when ``final_dir`` is
    a file or cannot be created. With ``owned_suffixes`` (e.g. ".wav", ".flac"), a folder of
    ``replaces`` that already exists must hold only files of those kinds (a writer's own, from an
    earlier run): one that holds anything else is refused before any work, rather than replaced
    with the user's files in it. ``folders``: the names of ``replaces`` that the writer makes as
    folders (e.g. "stems"); a file of that name in ``final_dir`` is not the writer's and is
    refused before any work too. ``commit_last``: the entry that marks the output whole (e.g. a
    cache's ``meta.json``): an old one is removed before anything moves in and the new one moves
    in last, so that a run stopped half-way through the moves leaves no such entry beside a mix
    of two runs' files.
    """
    final_dir = check_out_dir_entries(final_dir, replaces, owned_suffixes, folders)
    # the folders above final_dir that this call makes: removed again when it fails
    made = [p for p in (final_dir.parent, *final_dir.parent.parents) if not p.exists()]
    # the stage sits in final_dir when it exists (on its file system, e.g. a mounted volume: a move
    # across file systems fails), else beside it
    home = final_dir if final_dir.is_dir() else final_dir.parent
    try:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        prefix = f"{_temp_prefix(final_dir.name)}stage."
        for folder in dict.fromkeys((home, final_dir.parent)):   # a run killed while moving in: its stage beside
            _remove_orphan_stages(folder, prefix)
        stage = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=home))
    except OSError as exc:
        remove_empty_folders(made)
        raise UserError(f"{final_dir}: cannot make the output folder ({_why(exc)})") from None
    os.chmod(stage, 0o777 & ~_umask())
    ok = False
    try:
        yield stage
        try:
            final_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{final_dir}: cannot make the output folder ({_why(exc)})") from None
        with _locked(final_dir):   # two runs into one folder move their files in one after the other
            written = {entry.name for entry in stage.iterdir()}
            if commit_last is not None and (final_dir / commit_last).is_file():
                (final_dir / commit_last).unlink()
            for name in sorted(set(replaces) - written):
                old = final_dir / name
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                elif old.exists() or old.is_symlink():
                    old.unlink()
            for entry in sorted(stage.iterdir(), key=lambda e: (e.name == commit_last, e.name)):
                target = final_dir / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                try:
                    os.replace(entry, target)
                except OSError as exc:
                    raise UserError(f"{target}: cannot write ({_why(exc)})") from None
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok:
            remove_empty_folders(made)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (flock on its descriptor) while the block runs; a no-op where
    there is no flock."""
    try:
        import fcntl
    except ImportError:   # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:   # a file system without locks (some network mounts): go on without one
            os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)   # closing releases the lock


def _remove_orphan_stages(parent: Path, prefix: str) -> None:
    """Remove the staging folders ``<prefix><pid>.*`` in ``parent`` whose process has ended (a run
    killed outright, e.g. by SIGKILL, cannot remove its own); a live process's are left alone."""
    for stage in parent.glob(f"{glob_escape(prefix)}*.*"):
        parts = stage.name[len(prefix):].split(".")   # exactly "<pid>.<random>" (mkdtemp's has no dot)
        if len(parts) != 2 or not parts[0].isdigit() or not stage.is_dir() or stage.is_symlink():
            continue
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(stage, ignore_errors=True)
        except (OverflowError, OSError):
            pass   # another user's process (alive: PermissionError), or not a pid


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove each of ``folders`` (list them deepest first) that is empty; leave the others (a
    failed writer's way to take back the folders it made)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``path``; UserError ``"<path>: not readable JSON (...)"`` when the file
    cannot be read or decoded, or holds something other than an object. (Callers check that the
    file exists first, with their own advice on how to make it.)"""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: not readable JSON (expected an object, found {type(doc).__name__})")
    return doc


def check_json_out(path: str | Path, option: str = "--json") -> Path:
    """``path`` as a Path after checking, before any work, that a report can be written there:
    UserError naming ``option`` when it is a folder, when the nearest of its parent folders that
    exists is a file, or when no file can be made in that folder (a probe file is created and
    removed; the report itself is still written atomically at the end)."""
    if str(path) == "":
        raise UserError(f"{option} '': an empty path is not a file name")
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder (expected a file name)")
    above = next((p for p in path.parents if p.exists()), Path("."))
    if not above.is_dir():
        raise UserError(f"{option} {path}: cannot write the report here: {above} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=above)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write a file in {above} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path
