"""``musegansynth evaluate audio``: GANSynth's metrics for generated notes, beside real held-out notes.

For ``--n`` held-out notes of the note set (chosen with ``--seed``), the timbre model generates
a note with the same (pitch, program, velocity) and a random latent z. When the split has fewer
than ``--n`` notes, all of them are the real set, and the generator makes the remaining notes
with labels drawn from the training split (NDB's per-bin tests need many notes; see
:func:`training_labels`). The pitch/family
classifier (:mod:`audio.classifier`) then scores both sets alike:

- pitch accuracy and pitch entropy (pitched notes only; drums have no pitch class),
- family accuracy,
- NDB and NDB/K against the k-means bins (k = 50) of the log-mel spectrograms of real training
  notes (up to 5000 of them, cut to the length the notes are judged on),
- Fréchet distance of classifier features to the training notes, and generated vs. real.

Targets (printed and in the JSON): generated pitch accuracy >= 0.90 and >= 95% of the real
notes' accuracy, and generated NDB/K <= 0.30.

Both sets are judged on the same length: when generated notes are shorter than the
classifier's window, the real notes are cut to the generated length too; with ``--hold`` the
generated notes are held to the window instead, as a song holds a long note
(:func:`audio.render.sounding_spec`), for a model whose clips are too short for the judge (real
notes cut to a 64 ms clip lose their pitch to it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pipeline.errors import UserError, check_seed
from pipeline.fileio import check_json_out

#: Default classifier weights.
DEFAULT_CLASSIFIER = Path("data/pretrained/audio_classifier.safetensors")
#: Targets: minimum generated pitch accuracy, minimum generated / real accuracy, maximum NDB/K.
TARGET_PITCH_ACCURACY = 0.90
TARGET_ACCURACY_RATIO = 0.95
TARGET_NDB_OVER_K = 0.30


# ---------------------------------------------------------------------------------------------
# scoring


def score_waves(classifier: Any, waves: Any, pitch: Any, program: Any, family: Any) -> dict[str, Any]:
    """All per-set metrics of notes [N, T] with their labels (Int arrays [N]).

    Returns:
        dict: ``n``, ``pitch_accuracy``, ``pitch_entropy`` (nats; pitched notes in the
        classifier's range), ``family_accuracy``, ``ndb``, ``ndb_k``, ``ndb_over_k``,
        ``fd_train`` (Fréchet distance of features to the training notes; None without
        reference statistics), and the raw ``features`` [N, D] (numpy; dropped from JSON).
    """
    from audio.metrics import frechet_distance, feature_stats, pitch_accuracy, pitch_entropy

    out = classifier.outputs(waves)
    target = classifier.pitch_target(pitch, program)
    pitched = (target != -100).numpy()
    res: dict[str, Any] = {"n": int(len(target)), "n_pitched": int(pitched.sum())}
    res["pitch_accuracy"] = pitch_accuracy(out["pitch_logits"], target)
    res["pitch_entropy"] = pitch_entropy(out["pitch_logits"][pitched]) if pitched.any() else float("nan")
    res["family_accuracy"] = pitch_accuracy(out["family_logits"], np.asarray(family, dtype=np.int64))
    ref = classifier.reference
    if "ndb_centroids" in ref:
        ndb = classifier.ndb().evaluate(out["spectral"])
        res.update({"ndb": ndb.ndb, "ndb_k": ndb.k, "ndb_over_k": ndb.ndb_over_k})
    else:
        res.update({"ndb": None, "ndb_k": None, "ndb_over_k": None})
    feats = out["features"].numpy().astype(np.float64)
    res["fd_train"] = (frechet_distance(*feature_stats(feats), ref["fd_mu"], ref["fd_sigma"])
                       if "fd_mu" in ref and enough_for_frechet(feats) else None)
    res["features"] = feats
    return res


def enough_for_frechet(features: np.ndarray) -> bool:
    """Whether a set of notes' features [N, D] gives a Fréchet distance: more notes than feature
    dimensions (with fewer, the covariance is singular and its matrix square root meaningless;
    the distance is then reported as None)."""
    return features.ndim == 2 and len(features) > features.shape[1]


def compare(classifier: Any, real_waves: Any, generated_waves: Any, pitch: Any, program: Any, family: Any,
            generated_labels: tuple[Any, Any, Any] | None = None) -> dict[str, Any]:
    """Score real and generated notes side by side.

    Args:
        real_waves, generated_waves: Float arrays [N, T_real] and [M, T_gen] at the
            classifier's sample rate; both are judged on ``min(T_gen, window)`` samples.
        pitch, program, family: Int arrays [N], labels of the real notes.
        generated_labels: (pitch, program, family) Int arrays [M] of the generated notes;
            default: the real notes' labels (M = N).
    Returns:
        JSON-able dict: ``real`` and ``generated`` (see :func:`score_waves`, without features),
        ``fd_generated_vs_real``, ``pitch_accuracy_ratio`` (generated / real), ``clip_samples``
        and ``targets`` (each ``{"value", "target", "met"}``).
    """
    from audio.metrics import frechet_distance_features

    real = torch.as_tensor(np.asarray(real_waves, dtype=np.float32))
    gen = torch.as_tensor(np.asarray(generated_waves, dtype=np.float32))
    g_pitch, g_program, g_family = generated_labels if generated_labels is not None else (pitch, program, family)
    if real.dim() != 2 or gen.dim() != 2 or len(real) != len(pitch) or len(gen) != len(g_pitch):
        raise ValueError(f"expected real [N, T] and generated [M, T'] waves with N and M labels, got "
                         f"{tuple(real.shape)} and {tuple(gen.shape)} for {len(pitch)} and {len(g_pitch)} labels")
    clip = min(gen.shape[1], classifier.window_samples)
    real = real[:, :clip]
    gen = gen[:, :clip]
    r = score_waves(classifier, real, pitch, program, family)
    g = score_waves(classifier, gen, g_pitch, g_program, g_family)
    g_feats, r_feats = g.pop("features"), r.pop("features")
    fd_gr = (frechet_distance_features(g_feats, r_feats)
             if enough_for_frechet(g_feats) and enough_for_frechet(r_feats) else None)
    ratio = (g["pitch_accuracy"] / r["pitch_accuracy"]
             if r["pitch_accuracy"] and not math.isnan(r["pitch_accuracy"]) else float("nan"))
    targets = {
        "generated_pitch_accuracy": _target(g["pitch_accuracy"], TARGET_PITCH_ACCURACY, ">="),
        "pitch_accuracy_ratio": _target(ratio, TARGET_ACCURACY_RATIO, ">="),
        "generated_ndb_over_k": _target(g["ndb_over_k"], TARGET_NDB_OVER_K, "<="),
    }
    return {"real": r, "generated": g, "fd_generated_vs_real": fd_gr, "pitch_accuracy_ratio": ratio,
            "clip_samples": int(clip), "targets": targets}


def _target(value: float | None, target: float, op: str) -> dict[str, Any]:
    ok = value is not None and not math.isnan(value) and (value >= target if op == ">=" else value <= target)
    return {"value": value, "target": f"{op} {target}", "met": bool(ok)}


# ---------------------------------------------------------------------------------------------
# generation


def check_device(device: str) -> torch.device:
    """``--device``: "cpu", "cuda" or "cuda:N" of a GPU that is here; UserError naming the flag otherwise."""
    try:
        dev = torch.device(str(device))
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise UserError(f"--device {device}: expected cpu or cuda (or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: no such GPU ({torch.cuda.device_count()} here)")
    return dev


def _load_generator(path: Path, device: str) -> Any:
    """The timbre model (:class:`audio.generate.TimbreGenerator`) from shipped weights."""
    try:
        from audio.generate import TimbreGenerator
    except ModuleNotFoundError as exc:
        if exc.name == "audio.generate":
            raise UserError("audio.generate is not available yet (no timbre model to evaluate)") from None
        raise
    return TimbreGenerator.load(path, device=device)


@torch.no_grad()
def generate_notes(generator: Any, pitch: Any, program: Any, velocity: Any, *, seed: int = 0,
                   batch_size: int = 64, device: str = "cpu", samples: int | None = None) -> np.ndarray:
    """Generate one note per (pitch, program, velocity) (Int arrays [N]) with random z.

    z comes from ``generator.sample_z(N, torch.Generator().manual_seed(seed))`` (a CPU
    generator, as TimbreGenerator draws z on the CPU), so the same seed and device give the
    same notes. ``samples`` longer than the model's clip: each note lasts that long as a song
    plays it (:func:`audio.render.sounding_spec`: a pitched note holds its steady sound, a drum
    hit decays). Returns float32 [N, samples or the clip's samples] (non-finite samples set to 0).
    """
    from audio.render import DRUM_PROGRAM, sounding_spec

    n = len(pitch)
    rng = torch.Generator().manual_seed(seed)
    z = generator.sample_z(n, rng)
    dev = torch.device(device)
    as_long = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64), device=dev)  # noqa: E731
    p, pr, v = as_long(pitch), as_long(program), as_long(velocity)
    held = samples is not None and samples > generator.clip_samples
    parts = []
    for i in range(0, n, batch_size):
        b = slice(i, i + batch_size)
        if held:
            spec = generator.generate_spec(p[b], pr[b], v[b], z[b].to(dev)).float()
            spec = sounding_spec(spec, generator.transform.frames_for(samples), pr[b] == DRUM_PROGRAM)
            w = generator.transform.spec_to_wave(spec, samples)
        else:
            w = generator.generate(p[b], pr[b], v[b], z[b].to(dev))
        parts.append(torch.as_tensor(w).float().cpu())
    waves = torch.cat(parts).numpy()
    return np.nan_to_num(waves, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def choose_notes(n_available: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, n_available)`` notes chosen without replacement (seeded)."""
    if n < 1:
        raise UserError(f"--n {n}: must be at least 1")
    if n >= n_available:
        return np.arange(n_available)
    return np.sort(np.random.default_rng(seed).choice(n_available, n, replace=False))


def training_labels(data: str | Path, m: int, seed: int) -> dict[str, np.ndarray]:
    """Labels of ``m`` notes drawn at random (seeded) from the training split of ``data``.

    Used when more notes are asked for than the held-out split has: the extra generated notes
    take labels drawn from the training notes (without replacement while there are enough), so
    every generated note's label is an independent draw from the data's label distribution.
    Reusing the few held-out labels instead would make the generated set's mix of
    instruments and pitches that of the small split, which NDB's proportion tests flag as a
    difference even for a perfect generator.

    Returns:
        dict of int64 arrays [m]: ``pitch``, ``program``, ``velocity``, ``family``.
    """
    from audio.notes import NoteSet

    from audio.classifier import split_name

    notes = NoteSet(data, split_name("nsynth-train"))
    if len(notes) == 0:
        raise UserError(f"{data}: the training split has no notes to draw labels from")
    idx = np.random.default_rng(seed + 1).choice(len(notes), m, replace=m > len(notes))
    return {k: np.asarray(getattr(notes, k)[idx], dtype=np.int64) for k in ("pitch", "program", "velocity", "family")}


def set_reference(classifier: Any, data: str | Path, clip_samples: int, *, k: int = 50, max_notes: int = 5000,
                  seed: int = 0) -> dict[str, Any]:
    """Fit the NDB bins and FD statistics on real *training* notes cut to ``clip_samples``.

    Both sets are judged on their first ``clip_samples`` samples, so the reference must be too.
    Reads at most ``max_notes`` training notes (seeded choice). When the note set has no
    training split, the statistics stored with the classifier are kept if they were made on the
    same length (its whole window); otherwise UserError.

    Returns:
        JSON-able description: ``{"source", "n", "clip_samples", "k"}``.
    """
    from audio.classifier import load_split

    try:
        train = load_split(data, "nsynth-train", clip_samples, max_notes=max_notes, seed=seed)
    except UserError:
        if clip_samples >= classifier.window_samples and "ndb_centroids" in classifier.reference:
            return {"source": "classifier", "n": int(classifier.reference["ndb_counts"].sum()),
                    "clip_samples": classifier.window_samples, "k": int(len(classifier.reference["ndb_counts"]))}
        raise
    if len(train["waves"]) < max(k, 2):
        raise UserError(f"{data}: only {len(train['waves'])} training notes, NDB needs at least k={k} and the "
                        f"Frechet distance 2")
    classifier.compute_reference(train["waves"], k=k, seed=seed)
    return {"source": "nsynth-train", "n": int(len(train["waves"])), "clip_samples": int(clip_samples), "k": k}


def evaluate_audio(*, data: str | Path, weights: str | Path, classifier: str | Path = DEFAULT_CLASSIFIER,
                   split: str = "nsynth-test", n: int = 1000, seed: int = 0, device: str = "cpu",
                   batch_size: int = 64, ndb_k: int = 50, reference_notes: int = 5000, hold: bool = False,
                   log: Any = None) -> dict[str, Any]:
    """Generate notes for held-out labels and compare them with the real notes (see :func:`compare`).

    The NDB bins and the FD reference are fitted on up to ``reference_notes`` real training
    notes of ``data`` at the length the notes are judged on (see :func:`set_reference`). ``hold``:
    generated notes shorter than the classifier's window are held to it (see the module's text).

    Raises:
        UserError: missing or unreadable data, weights or classifier; sample rate mismatch.
    """
    from audio.classifier import PitchFamilyClassifier, load_split, split_name

    say = log or (lambda _m: None)
    for flag, value in (("--batch-size", batch_size), ("--ndb-k", ndb_k), ("--reference-notes", reference_notes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UserError(f"{flag}: should be a whole number of at least 1, got {value!r}")
    if reference_notes < 2:   # the Frechet distance needs the notes' covariance
        raise UserError(f"--reference-notes: should be at least 2 (the Frechet distance needs a covariance), "
                        f"got {reference_notes}")
    check_seed(seed)
    data, weights = Path(data), Path(weights)
    split_name(split)
    if not data.is_dir():
        raise UserError(f"{data}: note data folder not found (build it with 'musegansynth data notes')")
    if not weights.exists() and not weights.with_suffix(".safetensors").exists():
        raise UserError(f"{weights}: timbre model weights not found")
    check_device(device)
    from pipeline.config import resolve_weights_path

    classifier = resolve_weights_path(str(classifier), "classifier", "--classifier",
                                      train="python -m audio.classifier --data NOTES --out FILE")
    t0 = time.time()
    clf = PitchFamilyClassifier.load(classifier, device=device)
    gen = _load_generator(weights, device)
    if int(gen.sample_rate) != clf.sample_rate:
        raise UserError(f"{weights}: sample rate {gen.sample_rate} Hz differs from the classifier's "
                        f"{clf.sample_rate} Hz")
    notes = load_split(data, split, clf.window_samples)
    if notes["sample_rate"] != clf.sample_rate:
        raise UserError(f"{data}: sample rate {notes['sample_rate']} Hz differs from the classifier's "
                        f"{clf.sample_rate} Hz")
    idx = choose_notes(len(notes["waves"]), n, seed)
    real = {k: notes[k][idx] for k in ("pitch", "program", "velocity", "family")}
    labels = real
    if n > len(idx):
        extra = training_labels(data, n - len(idx), seed)
        labels = {k: np.concatenate([real[k], extra[k]]) for k in real}
    say(f"generating {len(labels['pitch'])} notes ...")
    t1 = time.time()
    waves = generate_notes(gen, labels["pitch"], labels["program"], labels["velocity"], seed=seed,
                           batch_size=batch_size, device=device, samples=clf.window_samples if hold else None)
    t_gen = time.time() - t1
    clip = min(waves.shape[1], clf.window_samples)
    reference = set_reference(clf, data, clip, k=ndb_k, max_notes=reference_notes, seed=seed)
    result = compare(clf, notes["waves"][idx], waves, real["pitch"], real["program"], real["family"],
                     generated_labels=(labels["pitch"], labels["program"], labels["family"]))
    result.update({"data": str(data), "split": split, "weights": str(weights), "classifier": str(classifier),
                   "n": int(len(waves)), "n_real": int(len(idx)), "n_train_labels": int(len(waves) - len(idx)),
                   "seed": seed, "device": device, "reference": reference,
                   "generated_samples": int(gen.clip_samples),
                   "held_to_samples": int(waves.shape[1]), "window_samples": int(clf.window_samples),
                   "seconds": {"generate": round(t_gen, 3), "total": round(time.time() - t0, 3)}})
    return result


# ---------------------------------------------------------------------------------------------
# output


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: one row per metric, columns real / generated, then the targets."""
    r, g = result["real"], result["generated"]
    rows = [("notes", r["n"], g["n"]), ("pitch accuracy", r["pitch_accuracy"], g["pitch_accuracy"]),
            ("pitch entropy (nats)", r["pitch_entropy"], g["pitch_entropy"]),
            ("family accuracy", r["family_accuracy"], g["family_accuracy"]),
            (f"NDB (K={g['ndb_k'] or '-'})", r["ndb"], g["ndb"]), ("NDB/K", r["ndb_over_k"], g["ndb_over_k"]),
            ("FD to training notes", r["fd_train"], g["fd_train"])]
    width = max(len(name) for name, *_ in rows) + 2
    lines = [f"{'metric':<{width}}{'real':>12}{'generated':>12}"]
    lines += [f"{name:<{width}}{_fmt(a):>12}{_fmt(b):>12}" for name, a, b in rows]
    lines.append(f"{'FD generated vs real':<{width}}{'':>12}{_fmt(result['fd_generated_vs_real']):>12}")
    lines.append(f"{'accuracy generated/real':<{width}}{'':>12}{_fmt(result['pitch_accuracy_ratio']):>12}")
    if result.get("held_to_samples", 0) > result.get("generated_samples", 0):
        lines.append(f"note: the model's {result['generated_samples']}-sample notes were held to the judge's "
                     f"{result['held_to_samples']} samples, as a song holds them")
    elif 2 * result["clip_samples"] < result.get("window_samples", 0):
        lines.append(f"note: both sets were cut to the model's {result['clip_samples']} samples, under half the "
                     f"judge's {result['window_samples']}: --hold judges the model's notes held to the window")
    if g["n"] < 500:
        lines.append(f"note: NDB's tests have little power with {g['n']} generated notes (use --n 1000 or more)")
    lines.append("targets:")
    for name, t in result["targets"].items():
        lines.append(f"  {name} {_fmt(t['value'])} {t['target']}: {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Write the result as JSON (NaN -> null), atomically."""
    from pipeline.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(_jsonable(result), indent=2, sort_keys=True) + "\n")


def cli_main(argv: Sequence[str]) -> int:
    """``musegansynth evaluate audio --data DIR [--split nsynth-test] --weights PATH [--classifier PATH]
    [--n 1000] [--seed 0] [--json OUT] [--device cpu] [--hold]``"""
    argv = list(argv)
    parser = argparse.ArgumentParser(prog=argv[0], description="Pitch accuracy, pitch entropy, NDB and Frechet "
                                     "distance of generated notes, beside real held-out notes.")
    parser.add_argument("--data", required=True, help="NSynth-format note set folder (e.g. data/build/notes/fluidr3)")
    parser.add_argument("--split", default="nsynth-test", help="held-out split (default nsynth-test)")
    parser.add_argument("--weights", required=True, help="timbre model weights (data/pretrained/audio_<name>.safetensors)")
    parser.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER),
                        help=f"pitch/family classifier weights (default {DEFAULT_CLASSIFIER}, in the project)")
    parser.add_argument("--n", type=int, default=1000,
                        help="notes to generate (default 1000); the real set is min(n, split size) held-out notes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ndb-k", type=int, default=50, help="k-means bins for NDB (default 50)")
    parser.add_argument("--reference-notes", type=int, default=5000,
                        help="training notes the NDB bins and FD reference are fitted on (default 5000)")
    parser.add_argument("--hold", action="store_true",
                        help="hold generated notes shorter than the classifier's window to it, as a song holds "
                             "a long note (default: cut the real notes to the generated length)")
    args = parser.parse_args(argv[1:])
    if args.json is not None:
        check_json_out(args.json)  # before the evaluation, which takes minutes
    result = evaluate_audio(data=args.data, weights=args.weights, classifier=args.classifier, split=args.split,
                            n=args.n, seed=args.seed, device=args.device, batch_size=args.batch_size,
                            ndb_k=args.ndb_k, reference_notes=args.reference_notes, hold=args.hold)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0
