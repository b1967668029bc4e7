"""The ``musegansynth`` command line: a thin layer of named stages over importable functions.

Each subcommand hands its own arguments to a ``cli_main(argv) -> int`` function in the module
that does the work, imported only when that subcommand runs (so ``--help`` is fast and
generation never imports training code). Any :class:`pipeline.errors.UserError` becomes one
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import io
import os
import signal
import sys
from typing import Iterator, Sequence

from pipeline.errors import UserError

PROG = "musegansynth"

# subcommand (or "subcommand target") -> (module with cli_main, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("pipeline.generate", "generate a whole song (MIDI, WAV, stems, pictures) from a song config"),
    "render": ("pipeline.render", "voice a MIDI file with the timbre model (or FluidSynth) into a WAV"),
    "accompany": ("pipeline.accompany", "given one track of a MIDI file, write the other tracks"),
    "train symbolic": ("symbolic.train", "train the MuseGAN multitrack composer (Lightning CLI)"),
    "train audio": ("audio.train", "train the GANSynth timbre model (Lightning CLI)"),
    "data symbolic": ("symbolic.data", "build the phrase dataset (POP909, Groove, LPD-5, MIDI folder, Bach chorales)"),
    "data notes": ("audio.notes", "build an NSynth-format note dataset by rendering notes with FluidSynth"),
    "evaluate symbolic": ("symbolic.evaluate", "compare generated music with held-out songs (EB, UPC, QN, DP, TD, ...)"),
    "evaluate audio": ("audio.evaluate", "pitch accuracy, pitch entropy, NDB and Frechet distance of generated notes"),
    "explain-phase": ("audio.phase_plot", "draw waveform, STFT frames, log magnitude, phase, unwrapped phase and IF"),
    "plot pianoroll": ("symbolic.plot", "draw a MIDI file as a multitrack pianoroll PNG"),
    "export symbolic": ("symbolic.export", "export a composer training checkpoint's generator (EMA or --raw)"),
    "export velocity": ("symbolic.velocity", "put a phrase cache's training velocities in a composer's card"),
    "export audio": ("audio.export", "write a timbre model again with its IF residual scaled (0: the harmonic prior alone)"),
}

GROUPS = {
    "train": "train one stage",
    "data": "build a dataset",
    "evaluate": "evaluate one stage",
    "plot": "draw a picture",
    "export": "export weights from a training checkpoint, or add to their cards",
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make whole songs: a MuseGAN composer writes the notes, a GANSynth timbre model plays them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, help_text) in COMMANDS.items():
        parts = name.split()
        if len(parts) == 1:
            sub.add_parser(parts[0], help=help_text, add_help=False)
        else:
            if parts[0] not in groups:
                gp = sub.add_parser(parts[0], help=GROUPS[parts[0]])
                groups[parts[0]] = gp.add_subparsers(dest="target", metavar="TARGET")
            groups[parts[0]].add_parser(parts[1], help=help_text, add_help=False)
    return parser


def _run(module_name: str, name: str, argv: list[str]) -> int:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        module = None
    entry = getattr(module, "cli_main", None)
    if entry is None:
        if "-h" in argv or "--help" in argv:
            print(f"usage: {PROG} {name} ...\n\n{COMMANDS[name][1]}.\n\n(not available yet in this version)")
            return 0
        raise UserError(f"'{name}' is not available yet")
    return int(entry([f"{PROG} {name}", *argv]) or 0)


def _match(argv: list[str]) -> tuple[str, int] | None:
    """The subcommand named by the first one or two words of ``argv``, and how many words it took."""
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", 2
    if argv and argv[0] in COMMANDS:
        return argv[0], 1
    return None


class Terminated(BaseException):
    """SIGTERM (``kill``, ``timeout``, a job scheduler's cancel) raised as an exception, so that the
    ``finally`` blocks of the atomic writers run and no staging folder or temporary file is left."""


def _one_line_error(original):
    """Wrap an argument parser's ``error`` so that a usage error is one line on stderr, exit 2.

    argparse (and the Lightning CLI's jsonargparse) print the whole usage before the error: for
    ``train`` that is about 90 lines with the problem on the last. Here the usage is swallowed and
    the message printed as ``<prog>: error: <message> (see '<prog> --help')``. Parsers that do not
    exit on errors (jsonargparse's inner parsers) still raise as before.
    """

    def error(self, message, *args, **kwargs):
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                original(self, message, *args, **kwargs)
            except SystemExit as exc:
                code = exc.code
            else:  # pragma: no cover - error() always exits or raises
                code = 2
        prog = str(getattr(self, "prog", PROG)).replace(" [options]", "")
        text = " ".join(str(message).split())
        print(f"{prog}: error: {text} (see '{prog} --help')", file=sys.stderr)
        raise SystemExit(code)

    error.__wrapped__ = original
    return error


@contextlib.contextmanager
def _cli_behaviour(name: str | None) -> Iterator[None]:
    """One-line usage errors (argparse; jsonargparse for ``train``), and SIGTERM as :class:`Terminated`
    (not for ``train``, where Lightning's own handler stops the run at a safe point)."""
    patched = [argparse.ArgumentParser]
    if name is not None and name.startswith("train "):
        try:
            import jsonargparse  # noqa: PLC0415

            patched.append(jsonargparse.ArgumentParser)
        except ImportError:  # pragma: no cover - Lightning's CLI needs it
            pass
    saved = [(cls, cls.__dict__["error"]) for cls in patched if "error" in cls.__dict__]
    for cls, original in saved:
        cls.error = _one_line_error(original)

    def on_term(signum, frame):
        raise Terminated()

    old_term = None
    if name is None or not name.startswith("train "):  # training: Lightning stops gracefully on SIGTERM itself
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        for cls, original in saved:
            cls.error = original


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    matched = _match(argv)
    with _cli_behaviour(matched[0] if matched else None):
        return _main(argv, matched)


def _main(argv: list[str], matched: tuple[str, int] | None) -> int:
    if matched is None:
        # No full subcommand: let argparse print help or a usage error (exit 2). The help that a
        # missing command or target brings up exits 2 too; only help asked for exits 0.
        parser = _build_parser()
        asked = any(a in ("-h", "--help") for a in argv)
        if argv and argv[0] in GROUPS and (len(argv) == 1 or argv[1].startswith("-")):
            argv = [argv[0], "--help"]  # a group without its target: its help (an unknown target is an error)
        try:
            parser.parse_args(argv if argv else ["--help"])
        except SystemExit as exc:
            if asked or exc.code not in (0, None):
                raise
            what = f"'{argv[0]}' needs a TARGET" if argv and argv[0] in GROUPS else "a COMMAND is needed"
            print(f"{PROG}: error: {what} (see the list above)", file=sys.stderr)
            return 2
        parser.print_help()
        return 2
    name, used = matched
    try:
        return _run(COMMANDS[name][0], name, argv[used:])
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):   # the disk, not the program: say so in one line
            print(f"{PROG}: error: {exc.filename + ': ' if exc.filename else ''}no space left on the disk "
                  f"(nothing was kept; free some and run it again)", file=sys.stderr)
            return 2
        if exc.filename is None and not isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                                                         PermissionError, FileExistsError)):
            return _internal_error(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{' '.join(str(exc.strerror or exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as exc:  # a bug, not bad input: say so in one line unless debugging
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    if os.environ.get("MUSEGANSYNTH_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off"):
        raise exc
    print(f"{PROG}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
          f"(set MUSEGANSYNTH_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


def run_main() -> None:  # pragma: no cover - console entry
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
