"""Quality of the shipped composer: objective metrics of generated phrases next to POP909's test split.

Runs ``musegansynth evaluate symbolic`` for ``data/pretrained/symbolic_pop909.*`` against
``data/build/symbolic/pop909`` (built by ``musegansynth data symbolic``): the composer writes
one phrase per held-out phrase, conditioned on its chords and style, for every phrase of the
split (``--n N`` takes a seeded random subset instead; the whole split halves the sampling noise
of the smaller rates, e.g. the piano's 1% empty bars, against the 512 phrases used before). Prints the table
(metric, track, held-out value, generated value, relative difference, within 10%?) and how many
metrics are within 10%. Exits 0 with a message when the weights or the data are absent.

    python benchmarks/bench_symbolic_quality.py [--split test] [--n N] [--seed 0] [--device cpu] [--json OUT]
        [--release TRACK=TAU | --release none] [--legato TRACK=TAU | --legato none] [--bootstrap N]
        [--given TRACK] [--chords data|none|estimated] [--transpose K]

``--bootstrap N`` adds each held-out value's 95% interval over N resamples of the split's songs
and whether the generated value lies inside it (how far a 90-song split's value can move).
``--given melody`` scores the accompaniment mode (each phrase's own melody given; its rows are not
compared; a second table gives the tonal distance of each composed track to the melody and its
chord-tone rate), ``--chords none`` composes without the chords (a bare melody's case),
``--chords estimated`` with chords estimated from the given track (as ``accompany`` does), and
``--transpose K`` moves the held-out phrases K semitones so that the composer must find each
song's key (``musegansynth evaluate symbolic`` takes the same options).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import device as device_arg  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.fileio import atomic_write_text  # noqa: E402

WEIGHTS = ROOT / "data" / "pretrained" / "symbolic_pop909.safetensors"
DATA = ROOT / "data" / "build" / "symbolic" / "pop909"


def skipped_for_missing_inputs(prog: str, weights: Path | None, data: Path, split: str, *,
                               given: bool = False) -> bool:
    """True, after saying what is missing, when the composer's weights (and their JSON; None: no
    composer needed) or the dataset's ``meta.json`` and ``split``.npz are absent: the symbolic
    benchmarks then skip. With ``given`` (the user named a path) a missing input is an error
    instead: one line on stderr and exit status 2 (a path typed wrong is not a skip)."""
    missing = [] if weights is None else [str(x) for x in (weights, weights.with_suffix(".json")) if not x.is_file()]
    if not (data / "meta.json").is_file() or not (data / f"{split}.npz").is_file():
        missing.append(f"{data}/meta.json + {split}.npz")
    if missing and given:
        print(f"{prog}: error: missing " + ", ".join(missing), file=sys.stderr)
        raise SystemExit(2)
    if missing:
        print(f"{prog}: skipped, missing " + ", ".join(missing)
              + " (train / download the weights; build the data with 'musegansynth data symbolic')")
    return bool(missing)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--n", type=int, default=None, help="at most this many phrases (default: the whole split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95%% interval of each held-out value from N resamples of the split's songs")
    from symbolic.generate import add_decode_arguments, parse_track_taus

    add_decode_arguments(p, "the card's decode.{rule}")
    p.add_argument("--given", metavar="TRACK", default=None,
                   help="accompaniment mode: each phrase's own TRACK is given, the composer writes the others "
                        "(e.g. --given melody --weights data/pretrained/symbolic_pop909_accompany.safetensors)")
    p.add_argument("--chords", choices=("data", "none", "estimated"), default="data",
                   help="the chords the composer gets: the split's (default), none, or estimated from --given")
    p.add_argument("--transpose", type=int, default=0, metavar="K",
                   help="move the held-out phrases K semitones first; the composer finds each song's key")
    args = p.parse_args(argv)

    if skipped_for_missing_inputs("bench_symbolic_quality", args.weights, args.data, args.split,
                                  given=args.weights != WEIGHTS or args.data != DATA):
        return 0

    from symbolic.evaluate import _json_safe, evaluate_symbolic, report_text

    t0 = time.perf_counter()
    try:
        report = evaluate_symbolic(args.data, split=args.split, weights=args.weights, n=args.n,
                                   seed=args.seed, device=args.device,
                                   release=parse_track_taus(args.release, "--release"),
                                   legato=parse_track_taus(args.legato, "--legato"), bootstrap=args.bootstrap,
                                   given=args.given, chords=args.chords, transpose=args.transpose)
    except UserError as exc:
        print(f"bench_symbolic_quality: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    print(report_text(report))
    s = report["summary"]
    print(f"within 10%: {s['within']}/{s['compared']} metrics "
          f"({report['n_data']} held-out vs {report['n_generated']} generated phrases, seed {args.seed}, "
          f"device {args.device}, {seconds:.1f} s)")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
