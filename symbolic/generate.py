"""Generation object for the MuseGAN composer: loads shipped weights, needs no Lightning.

    composer = Composer.load("data/pretrained/symbolic_pop909.json")        # or the .safetensors, or a folder
    gen = torch.Generator().manual_seed(0)
    z = composer.sample_latents(2, gen)                                       # two 4-bar phrases
    roll = composer.decode(z, chords=chords, style=style)                     # [2, T, B, S, P] in {0, 1}
    song = composer.compose(n_phrases=4, seed=0)                              # [T, 16, S, P]

Latents are drawn on the CPU from a CPU ``torch.Generator`` (then moved to the device), so a
seed gives the same latents on every device; the same seed + device gives the same output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError, is_whole
from pipeline.fileio import read_json_object
from symbolic.chords import shift_pitches
from symbolic.export import FORMAT
from symbolic.modules import ARRANGEMENT_KEY, LATENT_KEYS, Generator, track_indices, upgrade_arrangement_state


def check_track_taus(taus: dict | None, track_names: list[str], where: str) -> dict[int, float]:
    """``{track name or index: tau}`` -> ``{track index: tau}`` (a decoding rule's settings:
    ``release`` or ``legato``); ValueError naming ``where`` when a track is unknown or a tau is
    not in (0, 1]."""
    out: dict[int, float] = {}
    if taus is not None and not isinstance(taus, dict):
        raise ValueError(f"{where}: expected a mapping {{track: tau}}, got {type(taus).__name__}")
    for track, tau in dict(taus or {}).items():
        (i,) = track_indices([track], {"tracks": list(track_names)}, len(track_names), where)
        try:
            t = float(tau)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {track}: tau should be a number in (0, 1], got {tau!r}") from None
        if not 0.0 < t <= 1.0:
            raise ValueError(f"{where}: {track}: tau should be in (0, 1], got {t}")
        out[i] = t
    return out


def check_legato(legato: dict | None, track_names: list[str], monophonic, where: str) -> dict[int, float]:
    """:func:`check_track_taus` for ``legato``, whose tracks must also be among ``monophonic``
    (indices of the one-pitch-per-step tracks); ValueError naming ``where`` otherwise."""
    out = check_track_taus(legato, track_names, where)
    one_pitch = {int(m) for m in monophonic}
    for i in out:
        if i not in one_pitch:
            raise ValueError(f"{where}: {track_names[i]}: legato is for a one-pitch-per-step track "
                             f"(model.monophonic), and this one is not")
    return out


def check_drum_keys(value) -> dict[int, int]:
    """A card's ``drum_keys`` ({"26": 46, ...}: MIDI key -> the GM key it is played as) as ints;
    ValueError naming it when it is not such a mapping. None: {}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"drum_keys: expected a mapping of MIDI keys, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        try:
            src, dst = int(k), int(v)
        except (TypeError, ValueError):
            src = dst = -1
        if isinstance(v, bool) or not (0 <= src <= 127 and 0 <= dst <= 127):
            raise ValueError(f"drum_keys: {k!r}: {v!r}: expected MIDI keys 0-127")
        out[src] = dst
    return out


#: Decoding rules a card's ``decode`` may hold, with what each does (command-line help).
DECODE_RULES = {
    "release": "a held note of TRACK ends where another of its notes starts unless its probability there is "
               "at least TAU",
    "legato": "where a note of the one-pitch-per-step TRACK follows another at once, the earlier pitch also "
              "sounds at the new note's first step if its probability there is at least TAU",
}


def add_decode_arguments(parser, what: str) -> None:
    """Add ``--release TRACK=TAU`` and ``--legato TRACK=TAU`` (each repeatable, or ``none``) to an
    argparse parser; ``what`` says what they replace, with ``{rule}`` for the rule's name. Read
    them back with :func:`parse_track_taus`."""
    for rule, doc in DECODE_RULES.items():
        parser.add_argument(f"--{rule}", metavar="TRACK=TAU", action="append", default=None,
                            help=f"{doc} (0 < TAU <= 1); repeatable; replaces {what.format(rule=rule)} "
                                 f"('--{rule} none': no track)")


def parse_track_taus(items: list[str] | None, where: str) -> dict[str, str] | None:
    """Command-line ``TRACK=TAU`` items -> ``{track: tau}`` (checked later by :func:`check_track_taus`);
    None when there are none; ``none`` alone -> ``{}`` (no track). UserError on a bad item."""
    if items is None:
        return None
    if [i.strip().lower() for i in items] == ["none"]:
        return {}
    out: dict[str, str] = {}
    for item in items:
        track, sep, tau = item.partition("=")
        if not sep or not track.strip():
            raise UserError(f"{where}: expected TRACK=TAU (or none), got {item!r}")
        out[track.strip()] = tau.strip()
    return out


def release_held_notes(probs: torch.Tensor, active: torch.Tensor, release: dict[int, float],
                       keep: torch.Tensor | None = None) -> torch.Tensor:
    """End held notes where another note of the same track starts (a new onset releases them).

    A note of track ``t`` in ``release`` that is still held when some other pitch of ``t``
    starts (active at the step, not at the one before) stops there, with the rest of its run,
    unless its probability at that step is at least ``release[t]``: so a line does not smear one
    note under the next. Steps run through the phrase (notes cross bar lines); notes that start
    together (chords) are untouched.

    Args:
        probs: float [N, T, B, S, P] the generator's probabilities; active: bool, same shape
            (``probs > threshold``).
        release: track index -> tau in (0, 1].
        keep: optional bool [N, T]: rows left as they are (a given track).
    Returns:
        bool [N, T, B, S, P]: ``active`` with the released steps off.
    """
    def cut(a: torch.Tensor, pr: torch.Tensor, tau: float) -> torch.Tensor:
        o = a.clone()
        cutting = torch.zeros(a.shape[0], a.shape[-1], dtype=torch.bool, device=a.device)
        for j in range(1, a.shape[1]):
            onset = (a[:, j] & ~a[:, j - 1]).any(-1, keepdim=True)       # [N, 1]
            held = a[:, j] & a[:, j - 1]
            cutting = held & (cutting | (onset & (pr[:, j] < tau)))
            o[:, j] = a[:, j] & ~cutting
        return o

    return _along_each_track(probs, active, release, keep, cut)


def legato_overlaps(probs: torch.Tensor, active: torch.Tensor, legato: dict[int, float],
                    keep: torch.Tensor | None = None) -> torch.Tensor:
    """Let a one-pitch-per-step line overlap itself where the generator holds a note on.

    Where a note of track ``t`` in ``legato`` ends at step ``j - 1`` and another of its notes
    starts at ``j`` (a note change with no rest between), the ending pitch also sounds at ``j``
    if the generator's probability for it there, before the one-pitch-per-step rule dropped it,
    is at least ``legato[t]``: a one-step overlap, as players' melodies overlap the next note
    now and then. Steps run through the phrase (across bar lines); a note followed by a rest is
    untouched.

    Args:
        probs: float [N, T, B, S, P] the generator's probabilities before the one-pitch rule
            (``Generator.forward(..., return_dense=True)``); active: bool, same shape, the roll.
        legato: track index -> tau in (0, 1].
        keep: optional bool [N, T]: rows left as they are (a given track).
    Returns:
        bool [N, T, B, S, P]: ``active`` with the overlap steps on.
    """
    def overlap(a: torch.Tensor, pr: torch.Tensor, tau: float) -> torch.Tensor:
        starts = (a[:, 1:] & ~a[:, :-1]).any(-1, keepdim=True)               # a note starts at j
        ended = a[:, :-1] & ~a[:, 1:]                                         # a pitch stops before j
        o = a.clone()
        o[:, 1:] |= ended & starts & (pr[:, 1:] >= tau)
        return o

    return _along_each_track(probs, active, legato, keep, overlap)


def _along_each_track(probs: torch.Tensor, active: torch.Tensor, taus: dict[int, float],
                      keep: torch.Tensor | None, rule) -> torch.Tensor:
    """Apply ``rule(active [N, L, P], probs [N, L, P], tau) -> [N, L, P]`` to each track of ``taus``
    along its whole timeline (L = bars x steps); rows marked in ``keep`` [N, T] stay as they are.
    Returns ``active`` itself when ``taus`` is empty."""
    if not taus:
        return active
    n, _, b, s, p = active.shape
    out = active.clone()
    for t, tau in taus.items():
        o = rule(active[:, t].reshape(n, b * s, p), probs[:, t].reshape(n, b * s, p), tau).reshape(n, b, s, p)
        if keep is not None:
            o = torch.where(keep[:, t, None, None, None], active[:, t], o)
        out[:, t] = o
    return out


def _per_phrase(x: torch.Tensor, shifts: torch.Tensor, move) -> torch.Tensor:
    """``move(x[rows], k)`` for the rows of ``x`` [N, ...] whose ``shifts`` [N] is k (one call per
    distinct shift, ``x`` itself when all are 0)."""
    values = torch.unique(shifts)
    if values.numel() == 1:
        return move(x, int(values))
    out = torch.empty_like(x)
    for k in values.tolist():
        rows = (shifts == k).nonzero().flatten().to(x.device)
        out[rows] = move(x[rows], k)
    return out


def check_card(card: dict, cfg: dict, where: str | Path) -> None:
    """Check a weights card's descriptive fields against its generator's hyper-parameters ``cfg``
    (``Generator.config``): ``tracks`` (names), ``programs`` (GM 0-127), ``is_drum`` (true/false),
    one per track; ``grid`` (whole numbers matching the generator's bars); ``n_bars``; ``styles``
    (names, at most the generator's ``n_styles``); ``transposed``; ``training_steps``. A field that
    is absent (or null) takes the generator's default, as :class:`Composer` does.

    Raises:
        UserError ``"<card>: <field>: <problem>"`` on a hand-edited card that cannot be right.
    """
    def bad(field: str, problem: str) -> UserError:
        return UserError(f"{where}: {field}: {problem}")

    n = int(cfg["n_tracks"])

    def per_track(field: str, ok, one: str) -> None:
        value = card.get(field)
        if value is None:
            return
        if not isinstance(value, list):
            raise bad(field, f"expected a list with one {one} per track ({n}), got {type(value).__name__} {value!r}")
        if len(value) != n:
            raise bad(field, f"expected one {one} per track of the generator ({n}), got {len(value)}")
        for i, v in enumerate(value):
            if not ok(v):
                raise bad(field, f"item {i} is {v!r}, not {one}")

    per_track("tracks", lambda v: isinstance(v, str) and v.strip() != "", "track name")
    per_track("programs", lambda v: is_whole(v) and 0 <= v <= 127, "GM program 0-127")
    per_track("is_drum", lambda v: isinstance(v, bool), "true or false")
    names = card.get("tracks")
    if names:
        lowered = [t.strip().lower() for t in names]
        dup = next((t for i, t in enumerate(names) if lowered.index(t.strip().lower()) != i), None)
        if dup is not None:
            raise bad("tracks", f"the name {dup!r} is there twice")

    grid = card.get("grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise bad("grid", f"expected an object (steps_per_beat, beats_per_bar, lowest_pitch, n_pitches), "
                              f"got {type(grid).__name__} {grid!r}")
        want = {"steps_per_beat": int(cfg["steps_per_bar"]) // int(cfg["beats_per_bar"]),
                "beats_per_bar": int(cfg["beats_per_bar"]), "lowest_pitch": int(cfg["lowest_pitch"]),
                "n_pitches": int(cfg["n_pitches"]), "steps_per_bar": int(cfg["steps_per_bar"])}
        for key, expected in want.items():
            if key not in grid:
                if key == "steps_per_bar":
                    continue
                raise bad(f"grid.{key}", f"missing (the generator's is {expected})")
            value = grid[key]
            if not is_whole(value):
                raise bad(f"grid.{key}", f"expected a whole number, got {value!r}")
            if value != expected:
                raise bad(f"grid.{key}", f"{value} does not match the generator's {expected}")
    n_bars = card.get("n_bars")
    if n_bars is not None:
        if not is_whole(n_bars) or n_bars < 1:
            raise bad("n_bars", f"expected a whole number of bars >= 1, got {n_bars!r}")
        if n_bars != int(cfg["n_bars"]):
            raise bad("n_bars", f"{n_bars} does not match the generator's {cfg['n_bars']}")
    styles = card.get("styles")
    if styles is not None:
        if not isinstance(styles, list) or not all(isinstance(v, str) and v.strip() for v in styles):
            raise bad("styles", f"expected a list of style names, got {styles!r}")
        if len(styles) > int(cfg.get("n_styles", len(styles))):
            raise bad("styles", f"{len(styles)} names for the generator's {cfg['n_styles']} styles")
    if "transposed" in card and not isinstance(card["transposed"], bool):
        raise bad("transposed", f"expected true or false, got {card['transposed']!r}")
    steps = card.get("training_steps")
    if steps is not None and (not is_whole(steps) or steps < 0):
        raise bad("training_steps", f"expected a whole number >= 0, got {steps!r}")


def _resolve(path_or_dir: str | Path) -> tuple[Path, Path]:
    """(json path, safetensors path) from a .json, a .safetensors or a folder holding one pair."""
    p = Path(path_or_dir)
    if p.is_dir():
        cards = sorted(p.glob("symbolic_*.json"))
        if len(cards) != 1:
            raise UserError(f"{p}: expected exactly one symbolic_<name>.json in the folder, found {len(cards)}")
        p = cards[0]
    if p.suffix == ".safetensors":
        return p.with_suffix(".json"), p
    if p.suffix == ".json":
        return p, p.with_suffix(".safetensors")
    if p.with_suffix(".json").is_file():
        return p.with_suffix(".json"), p.with_suffix(".safetensors")
    raise UserError(f"{p}: not a symbolic weights file (expected symbolic_<name>.json / .safetensors)")


def _whole(value, what: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int when it is a whole number in [low, high]; UserError naming ``what``."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()     # a 0-d or one-element array: its number
    elif isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not is_whole(value) or (low is not None and value < low) or (high is not None and value > high):
        span = ("" if low is None else f" >= {low}") if high is None else f" from {low} to {high}"
        raise UserError(f"{what}: expected a whole number{span}, got {value!r}")
    return int(value)


def _numbers(value, what: str, dtype=torch.float32) -> torch.Tensor:
    """``value`` as a tensor of finite numbers; UserError naming ``what`` otherwise (text, NaN)."""
    if isinstance(value, str):
        raise UserError(f"{what}: expected an array of numbers, got the text {value!r} (chord symbols: "
                        f"pipeline.config.chords_to_array)")
    try:
        t = torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{what}: expected an array of numbers ({' '.join(str(exc).split())[:80]})") from None
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise UserError(f"{what}: holds values that are not numbers (NaN or infinite)")
    return t


def _whole_each(value, what: str, n: int, one: str, many: str, low: int | None = None, high: int | None = None,
                unit: str = "") -> torch.Tensor:
    """``value``, one whole number or ``n`` of them (in [low, high] when given), as a Long tensor [n]
    on the CPU; UserError naming ``what`` (``one`` / ``many``: what a value is called, e.g. "shift" /
    "shifts") otherwise."""
    raw = _numbers(value, what, torch.float64).reshape(-1)
    if raw.numel() not in (1, n):
        raise UserError(f"{what}: expected one {one}{'' if n == 1 else f' or {n}'}, got {raw.numel()}")
    outside = (low is not None and bool((raw < low).any())) or (high is not None and bool((raw > high).any()))
    if outside or (raw != raw.round()).any():
        span = "" if low is None else f" from {low} to {high}"
        raise UserError(f"{what}: {many} are whole numbers{unit}{span}, got {raw.tolist()}")
    return raw.long().expand(n).clone()


class Composer:
    """A trained multitrack generator with its track names, programs and grid.

    Attributes:
        track_names: list[str], T names; programs: list[int] GM programs (0-127);
        is_drum: list[bool]; grid: dict (steps_per_beat, beats_per_bar, lowest_pitch, n_pitches);
        n_bars: bars a phrase (B); steps_per_bar: S; n_pitches: P; styles: list[str];
        device: torch.device; generator: the :class:`symbolic.modules.Generator` (eval mode);
        release: {track index: tau} from the card's ``decode.release`` (:func:`release_held_notes`).
        legato: {track index: tau} from the card's ``decode.legato`` (:func:`legato_overlaps`).
        home_key: the composer learnt its music moved to C major / A minor (the card's
            ``transposed``), so :meth:`home_offset` tells how far other music sits from there.
    """

    def __init__(self, generator: Generator, card: dict, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.card = card
        self._latent_shapes: dict[str, tuple[int, ...]] | None = None   # one phrase's, for _check_latents
        cfg = generator.config
        self.track_names = list(card.get("tracks") or [f"track{i}" for i in range(cfg["n_tracks"])])
        self.programs = [int(p) for p in card.get("programs") or [0] * cfg["n_tracks"]]
        self.is_drum = [bool(d) for d in card.get("is_drum") or [False] * cfg["n_tracks"]]
        self.grid = dict(card.get("grid") or {})
        self.grid.setdefault("beats_per_bar", cfg["beats_per_bar"])
        self.grid.setdefault("steps_per_beat", cfg["steps_per_bar"] // cfg["beats_per_bar"])
        self.grid.setdefault("lowest_pitch", cfg["lowest_pitch"])
        self.grid.setdefault("n_pitches", cfg["n_pitches"])
        self.n_bars = int(cfg["n_bars"])
        self.steps_per_bar = int(cfg["steps_per_bar"])
        self.beats_per_bar = int(cfg["beats_per_bar"])
        self.n_pitches = int(cfg["n_pitches"])
        self.n_tracks = int(cfg["n_tracks"])
        self.styles = list(card.get("styles") or [])
        self.binary = cfg["binarize"] == "deterministic"
        self.training_steps = int(card.get("training_steps", 0))
        decode = card.get("decode") or {}
        if not isinstance(decode, dict):
            raise ValueError(f"decode: expected a mapping, got {type(decode).__name__}")
        self.release = check_track_taus(decode.get("release"), self.track_names, "decode.release")
        self.legato = check_legato(decode.get("legato"), self.track_names, generator.monophonic, "decode.legato")
        from symbolic.velocity import check_velocity_table

        # the data's mean velocity by step of the bar (and pitch, for drums), for the song pipeline
        self.velocity = check_velocity_table(decode.get("velocity"), self.track_names, self.steps_per_bar)
        # the GM key each of the data's own drum keys is played as (the card's "drum_keys", e.g.
        # symbolic.trackmap.GROOVE_TO_GM); none: the keys are GM's already
        self.drum_keys = check_drum_keys(card.get("drum_keys"))
        # trained on music moved to C major / A minor (the card's "transposed"): other keys are
        # moved there to be composed and back afterwards (see home_offset)
        self.home_key = bool(card.get("transposed", False)) and not all(self.is_drum)

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, path_or_dir: str | Path, device: str | torch.device = "cpu") -> "Composer":
        """Load ``symbolic_<name>.json`` + ``.safetensors`` (weights only; no pickle).

        Raises:
            UserError naming the file when a file is missing, unreadable, of another format or
            when the weights do not match the hyper-parameters.
        """
        js, st = _resolve(path_or_dir)
        if not js.is_file():
            raise UserError(f"{js}: weights card not found")
        if not st.is_file():
            raise UserError(f"{st}: weights file not found")
        card = read_json_object(js)
        if card.get("format") != FORMAT or "generator" not in card:
            raise UserError(f"{js}: not a musegansynth symbolic generator card")
        counts = ("n_tracks", "n_bars", "steps_per_bar", "beats_per_bar", "n_pitches", "lowest_pitch", "n_styles",
                  "z_dim", "branch_channels", "style_dim", "chord_dim", "track_cond_dim", "half_beat_channels")
        if isinstance(card["generator"], dict):
            for key in counts:
                if key in card["generator"] and not is_whole(card["generator"][key]):
                    raise UserError(f"{js}: generator.{key}: expected a whole number, got {card['generator'][key]!r}")
        try:
            gcfg = dict(card["generator"])
            gcfg["trunk_channels"] = tuple(gcfg.get("trunk_channels", (64, 32)))
            generator = Generator(**gcfg)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise UserError(f"{js}: bad generator hyper-parameters ({exc})") from None
        check_card(card, generator.config, js)
        from pipeline.weights import read_matching_state

        state = read_matching_state(st, generator, f"weights do not match {js.name}", upgrade=upgrade_arrangement_state)
        generator.load_state_dict(state)
        try:
            return cls(generator, card, device)
        except ValueError as exc:
            raise UserError(f"{js}: {exc}") from None

    # ----------------------------------------------------------------- latent space
    def sample_latents(self, n: int, generator: torch.Generator | None = None, chords: torch.Tensor | None = None,
                       has_chords: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Latents for ``n`` phrases: dict ``shared`` [n, Z], ``shared_t`` [n, Z], ``private`` [n, T, Z],
        ``private_t`` [n, T, Z] (and bool ``arrangement`` [n, T, B] for a model with arrangement
        conditioning, drawn bar by bar for the bars with and without a chord in ``chords``
        [n, B, K, 12], the chords the phrases will be decoded with; None: no chord information;
        ``has_chords`` bool [n] marks all-zero phrases that have no chord rather than no
        information), drawn from ``generator`` (a CPU torch.Generator), on the device."""
        n = _whole(n, "sample_latents: n", 0)
        if chords is not None:
            chords = self._check_conditions(n, chords, None)[0].cpu()
        return self.generator.sample_latents(n, generator=generator, device=self.device, chords=chords,
                                             has_chords=has_chords)

    @staticmethod
    def interpolate(latents_a: dict[str, torch.Tensor], latents_b: dict[str, torch.Tensor],
                    t: float | torch.Tensor) -> dict[str, torch.Tensor]:
        """Spherical interpolation per latent (keeps the norm typical of Gaussian samples).

        ``t`` is a float in [0, 1] or a tensor [N] (one weight per phrase); 0 gives a, 1 gives b.
        An arrangement (binary) is a's where ``t < 0.5`` and b's from there on.
        """
        for key in LATENT_KEYS:
            if key not in latents_a or key not in latents_b:
                raise UserError(f"interpolate: both latents need {key!r}")
            if tuple(latents_a[key].shape) != tuple(latents_b[key].shape):
                raise UserError(f"interpolate: {key} has shape {list(latents_a[key].shape)} in a, "
                                f"{list(latents_b[key].shape)} in b")
        n = latents_a["shared"].shape[0]
        weights = _numbers(t, "interpolate: t", torch.float64)
        if weights.numel() != 1 and (weights.dim() != 1 or weights.numel() != n):
            raise UserError(f"interpolate: t should be one number or {n} (one per phrase), got shape "
                            f"{list(weights.shape)}")
        if ((weights < 0) | (weights > 1)).any():
            raise UserError(f"interpolate: t should lie in [0, 1], got {weights.tolist()}")
        out = {}
        if ARRANGEMENT_KEY in latents_a and ARRANGEMENT_KEY in latents_b:
            a, b = latents_a[ARRANGEMENT_KEY], latents_b[ARRANGEMENT_KEY]
            tt = torch.as_tensor(t, device=a.device).reshape(-1, *([1] * (a.dim() - 1)))
            out[ARRANGEMENT_KEY] = torch.where(tt < 0.5, a, b)
        for key in LATENT_KEYS:
            a, b = latents_a[key], latents_b[key]
            tt = torch.as_tensor(t, dtype=a.dtype, device=a.device)
            if tt.dim() == 1:
                tt = tt.reshape(-1, *([1] * (a.dim() - 1)))
            an, bn = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-8), b / b.norm(dim=-1, keepdim=True).clamp(min=1e-8)
            omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
            so = torch.sin(omega)
            slerp = (torch.sin((1 - tt) * omega) * a + torch.sin(tt * omega) * b) / so
            lerp = (1 - tt) * a + tt * b
            out[key] = torch.where(so.abs() < 1e-4, lerp, slerp)
        return out

    # ----------------------------------------------------------------- decoding
    def _check_conditions(self, n: int, chords, style):
        if chords is not None:
            # contiguous: the same chords give the same bytes however they are laid out in memory
            chords = _numbers(chords, "chords").to(self.device).contiguous()
            want = (n, self.n_bars, self.beats_per_bar, 12)
            if tuple(chords.shape) != want:
                raise UserError(f"chords: expected shape {list(want)}, got {list(chords.shape)}")
        if style is not None:
            style = _whole_each(style, "style", n, "label", "labels").to(self.device)
            if ((style >= len(self.styles)) | (style < -1)).any() and self.styles:
                raise UserError(f"style: labels must be -1 (unknown) or 0..{len(self.styles) - 1} "
                                f"({', '.join(self.styles)})")
        return chords, style

    def style_index(self, name: str | None) -> int:
        """Index of a style name (case-insensitive); None -> -1 (unknown). UserError listing the styles."""
        if name is None:
            return -1
        names = [s.lower() for s in self.styles]
        if name.lower() not in names:
            raise UserError(f"style: unknown style '{name}' (known: {', '.join(self.styles) or 'none'})")
        return names.index(name.lower())

    def home_offset(self, chords=None, given=None) -> int:
        """Semitones (-5..6) by which the conditions sit above the composer's home key.

        The key is estimated (:func:`symbolic.chords.key_offset`, Krumhansl-Schmuckler) from the
        chord tones of every beat of ``chords`` [..., 12] and the sounding steps of a given track
        ``given`` [..., P] (a beat's worth of steps counting as one chord beat), all phrases of a
        song together. Passing the result as ``decode(..., transpose=)`` composes at home and moves
        the music back. 0 for a composer trained without transposition, or with nothing to go on.
        """
        if not self.home_key:
            return 0
        from symbolic.chords import key_offset
        from symbolic.metrics import chroma

        hist = np.zeros(12)
        if chords is not None:
            c = _numbers(chords, "chords", torch.float64)
            if c.dim() == 0 or c.shape[-1] != 12:
                raise UserError(f"chords: expected 12 pitch classes last, got shape {list(c.shape)}")
            hist += c.reshape(-1, 12).sum(0).cpu().numpy()
        if given is not None:
            g = _numbers(given, "given track")
            if g.dim() == 0 or g.shape[-1] != self.n_pitches:
                raise UserError(f"given track: expected {self.n_pitches} pitches last, got shape {list(g.shape)}")
            steps = (g > 0).reshape(-1, self.n_pitches).sum(0).cpu().numpy()
            hist += chroma(steps, int(self.grid["lowest_pitch"])) / int(self.grid["steps_per_beat"])
        return key_offset(hist)

    def _check_latents(self, latents) -> int:
        """The number of phrases of ``latents``; UserError when they are not this composer's
        (:meth:`sample_latents`: a key missing, or a shape of another model)."""
        if not isinstance(latents, dict) or any(k not in latents for k in LATENT_KEYS):
            raise UserError(f"latents: expected a dict with {', '.join(LATENT_KEYS)} (Composer.sample_latents)")
        n = int(latents["shared"].shape[0])
        if self._latent_shapes is None:   # drawn once, on the first decode
            ref = self.generator.sample_latents(1, generator=torch.Generator().manual_seed(0))
            self._latent_shapes = {k: tuple(v.shape[1:]) for k, v in ref.items()}
        for key, shape in self._latent_shapes.items():
            if key in latents and tuple(latents[key].shape) != (n, *shape):
                raise UserError(f"latents: {key} should have shape {[n, *shape]} for this composer, "
                                f"got {list(latents[key].shape)} (latents of another model?)")
        return n

    @torch.no_grad()
    def decode(self, latents: dict[str, torch.Tensor], chords: torch.Tensor | None = None,
               style: torch.Tensor | None = None, cond_roll: torch.Tensor | None = None,
               cond_track: torch.Tensor | int | None = None, threshold: float = 0.5,
               transpose: int | torch.Tensor = 0) -> torch.Tensor:
        """Latents -> phrases.

        Args:
            latents: from :meth:`sample_latents` (N phrases).
            chords: float [N, B, K, 12] multi-hot chord pitch classes per beat, or None (rows of all
                zeros mean "no chord information" for that phrase).
            style: long [N] (or one int) style indices, -1 unknown; None = unknown.
            cond_roll: float [N, B, S, P] a given track; cond_track: its index (int or long [N]).
            threshold: binarisation threshold for sigmoid models; ``None`` returns probabilities.
                Binarising also releases held notes of the tracks in :attr:`release`
                (:func:`release_held_notes`), then lets the tracks in :attr:`legato` overlap
                (:func:`legato_overlaps`).
            transpose: the chords and the given track sit this many semitones above the key the
                composer learnt (:meth:`home_offset`): they are moved down by it, composed, and
                the result moved up by it (notes it would push out of the pitch range are dropped).
                One int for all phrases, or long [N], one per phrase (the sections of a song).
        Returns:
            float [N, T, B, S, P] in {0, 1} (probabilities in [0, 1] when ``threshold`` is None
            and the model is not binary); the given track, if any, is kept as given.
        """
        n = self._check_latents(latents)
        if threshold is not None:   # as evaluate's --threshold: 0 < t <= 1
            t = _numbers(threshold, "threshold", torch.float64)
            if t.numel() != 1 or isinstance(threshold, bool) or not 0 < float(t) <= 1:
                raise UserError(f"threshold: expected a number above 0 and at most 1 (or None), got {threshold!r}")
            threshold = float(t)
        chords, style = self._check_conditions(n, chords, style)
        has = None if chords is None else chords.reshape(n, -1).amax(1) > 0
        if cond_roll is not None:
            cond_roll = torch.as_tensor(cond_roll, dtype=torch.float32).to(self.device).contiguous()
            want = (n, self.n_bars, self.steps_per_bar, self.n_pitches)
            if tuple(cond_roll.shape) != want:
                raise UserError(f"given track: expected shape {list(want)}, got {list(cond_roll.shape)}")
            if cond_track is None:
                raise UserError("cond_track: give the index of the given track (cond_roll is its notes)")
            cond_track = _whole_each(cond_track, "cond_track", n, "track index", "track indices", 0,
                                     self.n_tracks - 1).to(self.device)
        shifts = _whole_each(transpose, "transpose", n, "shift", "shifts", -11, 11, " of semitones")
        given = cond_roll
        if shifts.any():
            chords = None if chords is None else _per_phrase(chords, -shifts, lambda x, k: torch.roll(x, k, dims=-1))
            cond_roll = None if cond_roll is None else _per_phrase(cond_roll, -shifts, shift_pitches)
        lat = {k: latents[k].to(self.device) for k in (*LATENT_KEYS, ARRANGEMENT_KEY) if k in latents}
        probs, dense = self.generator(lat, chords, has, style, cond_roll, cond_track, return_dense=True)
        keep = None
        if cond_track is not None:
            keep = (torch.nn.functional.one_hot(cond_track.clamp(min=0), self.n_tracks).bool()
                    & (cond_track >= 0)[:, None])
        if threshold is None or self.binary:
            out = probs.float()
        else:
            active = release_held_notes(probs, probs > threshold, self.release, keep)
            out = legato_overlaps(dense, active, self.legato, keep).float()
        if shifts.any():
            out = _per_phrase(out, shifts, shift_pitches)
            if keep is not None:  # the given track exactly as given, none of it lost at the range's ends
                out[keep] = given[keep.any(1)].to(out.dtype)
        return out

    # ----------------------------------------------------------------- conveniences
    def _phrase_chords(self, chords, n_phrases: int, bars: int | None = None) -> torch.Tensor | None:
        """[bars_total, K, 12] (or [n_phrases, B, K, 12]) -> [n_phrases, B, K, 12], zero-padded;
        UserError for chords of more than ``bars`` bars (default all the phrases')."""
        if chords is None:
            return None
        c = _numbers(chords, "chords")
        if c.dim() == 4:
            c = c.reshape(-1, *c.shape[2:])
        if c.dim() != 3 or tuple(c.shape[1:]) != (self.beats_per_bar, 12):
            raise UserError(f"chords: expected shape [bars, {self.beats_per_bar}, 12], got {list(c.shape)}")
        total = n_phrases * self.n_bars
        bars = total if bars is None else bars
        if c.shape[0] > bars:
            raise UserError(f"chords: {c.shape[0]} bars of chords for {bars} bars of music")
        if c.shape[0] < total:
            c = torch.cat([c, c.new_zeros(total - c.shape[0], *c.shape[1:])])
        return c[:total].reshape(n_phrases, self.n_bars, self.beats_per_bar, 12)

    def compose(self, n_phrases: int, seed: int, chords=None, style: int | str | None = None) -> torch.Tensor:
        """Generate ``n_phrases`` independent phrases joined in time.

        Args:
            n_phrases: number of B-bar phrases (>= 1).
            seed: random seed (same seed + device -> same output).
            chords: float [n_phrases * B, K, 12] chord pitch classes per beat, or None; in any
                key (the phrases are composed in the composer's home key, :meth:`home_offset`,
                and moved to the chords' key).
            style: style index or name, or None (unknown).
        Returns:
            float [T, n_phrases * B, S, P] in {0, 1} (on the CPU).
        """
        n_phrases = _whole(n_phrases, "n_phrases", 1)
        return self.join_phrases(self._decode_seeded(n_phrases, seed, chords, style))

    def _decode_seeded(self, n_phrases: int, seed: int, chords, style: int | str | None, bars: int | None = None,
                       **cond) -> torch.Tensor:
        """Latents from ``seed``, chords and style per phrase, decoded in the composer's home key
        (the key of all the chords and the given track together): [N, T, B, S, P]."""
        seed = _whole(seed, "seed", 0, 2**63 - 1)
        if isinstance(style, str):
            style = self.style_index(style)
        elif style is not None:
            style = _whole(style, "style", -1)
        c = self._phrase_chords(chords, n_phrases, bars)
        z = self.sample_latents(n_phrases, torch.Generator().manual_seed(seed), chords=c)
        st = None if style is None else torch.full((n_phrases,), int(style), dtype=torch.long)
        transpose = self.home_offset(chords=c, given=cond.get("cond_roll"))
        return self.decode(z, chords=c, style=st, transpose=transpose, **cond)

    @staticmethod
    def join_phrases(roll: torch.Tensor) -> torch.Tensor:
        """[N, T, B, S, P] -> [T, N*B, S, P] (phrases one after another), on the CPU."""
        n, t, b, s, p = roll.shape
        return roll.permute(1, 0, 2, 3, 4).reshape(t, n * b, s, p).cpu()

    def accompany(self, given_roll, track: int | str, seed: int, chords=None,
                  style: int | str | None = None) -> torch.Tensor:
        """Write the other tracks for one given track.

        Uses the generator's track-conditional mode (trained with random track conditioning:
        the given track is encoded per bar and fed to the generator; the critic judged the
        result with the real track pasted in). A given track in another key than the composer's
        home key is moved there first, and the accompaniment back (:meth:`home_offset`).

        Args:
            given_roll: [bars_total, S, P] the given track (any values > 0 count as notes).
            track: index or name of the given track.
            seed: random seed.
            chords: optional [bars_total, K, 12]; style: optional index or name.
        Returns:
            float [T, bars_total, S, P] in {0, 1}; track ``track`` equals the given roll (binarised).
        """
        try:
            (track,) = track_indices([track], {"tracks": self.track_names}, self.n_tracks, "--track")
        except ValueError as e:
            raise UserError(str(e)) from None
        g = (torch.as_tensor(given_roll) > 0).float()
        if g.dim() != 3 or tuple(g.shape[1:]) != (self.steps_per_bar, self.n_pitches):
            raise UserError(f"given track: expected shape [bars, {self.steps_per_bar}, {self.n_pitches}], "
                            f"got {list(g.shape)}")
        bars = g.shape[0]
        if bars == 0:
            raise UserError("given track: no bars")
        n_phrases = -(-bars // self.n_bars)
        pad = n_phrases * self.n_bars - bars
        g = torch.cat([g, g.new_zeros(pad, *g.shape[1:])]).reshape(n_phrases, self.n_bars, *g.shape[1:])
        roll = self._decode_seeded(n_phrases, seed, chords, style, bars=bars, cond_roll=g, cond_track=int(track))
        return self.join_phrases(roll)[:, :bars]
