"""Atomic file output (nothing half-written is ever left behind) and a checked JSON reader."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` defaults to the suffix of ``path`` (some writers choose the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, path)
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


@contextlib.contextmanager
def staged_dir(final_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder; on success its entries are moved into ``final_dir``.

    On failure the staging folder is deleted and ``final_dir`` gets nothing new. Entries that
    already exist in ``final_dir`` with the same name are replaced.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.stage.", dir=final_dir.parent))
    os.chmod(stage, 0o777 & ~_umask())
    try:
        yield stage
        final_dir.mkdir(parents=True, exist_ok=True)
        for entry in sorted(stage.iterdir()):
            target = final_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
