"""MuseGAN hybrid multitrack generator and critic, redesigned for speed on small CPUs.

Shapes use these letters: N batch, T tracks, B bars, S steps a bar, P pitches, Z latent size,
K beats a bar. A multitrack phrase is a float tensor ``[N, T, B, S, P]`` in [0, 1].

Design (after Dong et al. 2018, "MuseGAN", hybrid model, and Dong & Yang 2018,
"BinaryMuseGAN"), changed so that training is ~10-50x faster than a 3D-convolution port:

* bars are folded into the batch, so every convolution is 2D over (time, pitch);
* most (transposed) convolutions have kernel == stride, i.e. a reshape and a matrix multiply;
* the private per-track branches run as one grouped convolution (``groups=T``).

Latents (``Generator.latent_shapes``):
  ``shared``      [N, Z]     shared, time-independent
  ``shared_t``    [N, Z]     fed to the shared temporal generator -> [N, B, Z]
  ``private``     [N, T, Z]  private per track, time-independent
  ``private_t``   [N, T, Z]  fed to the per-track temporal generators -> [N, T, B, Z]

Conditioning (all optional):
  ``chords``      [N, B, K, 12] float multi-hot pitch classes per beat; ``has_chords`` [N] bool
                  (False, or ``chords=None``, takes a learned "no chord information" path);
  ``style``       [N] long in [0, n_styles) (``None`` or ``-1`` = learned "unknown style");
  ``cond_roll``   [N, B, S, P] float, one given track; ``cond_track`` [N] long, its index
                  (``-1`` = no given track). Used by ``accompany``: the generator writes all tracks,
                  the given track is then pasted over its own (see :func:`paste_condition`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LATENT_KEYS = ("shared", "shared_t", "private", "private_t")
ARRANGEMENT_KEY = "arrangement"
"""Latent key of the per-(track, bar) arrangement [N, T, B] (1 = the track plays in that bar),
drawn by :meth:`Generator.sample_latents` when the generator has ``arrangement=True``."""
BAR_GATE_OPEN = 5.0
"""Initial logit of :class:`Generator`'s bar gates (sigmoid(5) = 0.993: open)."""
BAR_GATE_SCALE = 10.0
"""A bar gate's logit is this times its MLP's output: Adam moves every parameter by about the
learning rate per step, so an unscaled gate would need thousands of steps to go from open (5)
to closed (< 0); scaled, a few hundred."""


# --------------------------------------------------------------------------- binary neurons
class _StraightThroughThreshold(torch.autograd.Function):
    """``x > threshold`` as exact 0 / 1 in the forward pass, identity gradient in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: float) -> torch.Tensor:  # noqa: D401
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def threshold_straight_through(probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``probs > threshold`` as 0/1 in the forward pass, the identity's gradient in the backward pass.

    The forward value is exactly the roll that generation writes (thresholded at 0.5), so
    statistics computed on it are the statistics of the generated music; the gradient reaches
    every probability (the straight-through estimator).
    """
    return _StraightThroughThreshold.apply(probs, threshold)


def binary_neuron(logits: torch.Tensor) -> torch.Tensor:
    """Deterministic binary neuron (BinaryMuseGAN) with the straight-through estimator.

    Args:
        logits: float tensor of any shape (pre-sigmoid).
    Returns:
        Tensor of the same shape with values in {0, 1}; its gradient is the gradient of
        ``sigmoid(logits)`` (the sigmoid-adjusted straight-through estimator).
    """
    return threshold_straight_through(torch.sigmoid(logits))


# --------------------------------------------------------------------------- helpers
class GroupedLinear(nn.Module):
    """G independent linear layers applied to ``x`` of shape [N, G, in] -> [N, G, out]."""

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ngi,gio->ngo", x, self.weight) + self.bias


def chord_pitch_map(chords: torch.Tensor, steps_per_bar: int, n_pitches: int, lowest_pitch: int) -> torch.Tensor:
    """Spread per-beat chord pitch classes onto the pianoroll grid.

    Args:
        chords: float [N, B, K, 12] multi-hot pitch classes per beat.
        steps_per_bar: S (a multiple of K).
        n_pitches: P; pitch index i is MIDI pitch ``lowest_pitch + i``.
    Returns:
        float [N, B, S, P]: 1 where the pitch's class belongs to the chord sounding at that step.
    """
    n, b, k, _ = chords.shape
    if steps_per_bar % k:
        raise ValueError(f"steps_per_bar {steps_per_bar} is not a multiple of beats_per_bar {k}")
    per_step = chords.repeat_interleave(steps_per_bar // k, dim=2)  # [N, B, S, 12]
    pc = (torch.arange(n_pitches, device=chords.device) + lowest_pitch) % 12
    return per_step[..., pc]


def paste_condition(roll: torch.Tensor, cond_roll: torch.Tensor | None, cond_track: torch.Tensor | None) -> torch.Tensor:
    """Replace track ``cond_track[n]`` of sample n by ``cond_roll[n]`` (where ``cond_track[n] >= 0``).

    Args:
        roll: [N, T, B, S, P]; cond_roll: [N, B, S, P]; cond_track: [N] long (-1 = none).
    Returns:
        [N, T, B, S, P] (a new tensor; gradients flow to the tracks that were kept).
    """
    if cond_roll is None or cond_track is None:
        return roll
    t = roll.shape[1]
    onehot = F.one_hot(cond_track.clamp(min=0), t).to(roll.dtype) * (cond_track >= 0).to(roll.dtype)[:, None]
    mask = onehot[:, :, None, None, None]
    return roll * (1 - mask) + cond_roll[:, None].to(roll.dtype) * mask


def _pitch_split(n_pitches: int) -> tuple[int, int]:
    """(coarse, fine) with coarse * fine == n_pitches: octaves x 12 when P is a multiple of 12."""
    return (n_pitches // 12, 12) if n_pitches % 12 == 0 else (1, n_pitches)


class Conditioner(nn.Module):
    """Encodes style, chords and an optional given track into one vector per bar.

    Output: float [N, B, cond_dim].
    """

    def __init__(self, *, n_tracks: int, n_bars: int, steps_per_bar: int, beats_per_bar: int, n_pitches: int,
                 n_styles: int, style_dim: int, chord_dim: int, track_cond_dim: int) -> None:
        super().__init__()
        self.n_tracks, self.n_bars, self.n_styles = n_tracks, n_bars, n_styles
        self.steps_per_bar, self.beats_per_bar, self.n_pitches = steps_per_bar, beats_per_bar, n_pitches
        self.style = nn.Embedding(n_styles + 1, style_dim)  # last row: unknown style
        self.chord = nn.Linear(beats_per_bar * 12, chord_dim)
        self.no_chord = nn.Parameter(torch.zeros(chord_dim))
        self.track_cond_dim = track_cond_dim
        if track_cond_dim > 0:
            self.which_track = nn.Embedding(n_tracks + 1, track_cond_dim)  # last row: no given track
            # per-bar encoder of the given track: 12 pitches x steps of a beat -> one feature per
            # (beat, octave) (kernel == stride), then a linear map of the whole bar
            self._p_coarse, self._p_fine = _pitch_split(n_pitches)
            self._k_steps = steps_per_bar // beats_per_bar
            self.track_local = nn.Linear(self._k_steps * self._p_fine, 16)
            self.track_bar = nn.Linear(16 * beats_per_bar * self._p_coarse, track_cond_dim)
        self.dim = style_dim + chord_dim + (track_cond_dim if track_cond_dim > 0 else 0)

    def forward(self, n: int, chords: torch.Tensor | None = None, has_chords: torch.Tensor | None = None,
                style: torch.Tensor | None = None, cond_roll: torch.Tensor | None = None,
                cond_track: torch.Tensor | None = None) -> torch.Tensor:
        dev = self.no_chord.device
        b = self.n_bars
        if style is None:
            style = torch.full((n,), -1, dtype=torch.long, device=dev)
        style = torch.where(style < 0, torch.full_like(style, self.n_styles), style)
        parts = [self.style(style)[:, None, :].expand(n, b, -1)]
        if chords is None:
            parts.append(self.no_chord.expand(n, b, -1))
        else:
            enc = self.chord(chords.reshape(n, b, -1).to(self.no_chord.dtype))
            if has_chords is None:
                has_chords = chords.reshape(n, -1).amax(dim=1) > 0
            keep = has_chords.to(enc.dtype)[:, None, None]
            parts.append(enc * keep + self.no_chord * (1 - keep))
        if self.track_cond_dim > 0:
            if cond_track is None:
                cond_track = torch.full((n,), -1, dtype=torch.long, device=dev)
            idx = torch.where(cond_track < 0, torch.full_like(cond_track, self.n_tracks), cond_track)
            which = self.which_track(idx)[:, None, :]
            if cond_roll is None:
                parts.append(which.expand(n, b, -1))
            else:
                k, ks, o, f = self.beats_per_bar, self._k_steps, self._p_coarse, self._p_fine
                x = cond_roll.to(which.dtype).reshape(n * b, k, ks, o, f).transpose(2, 3)
                x = F.leaky_relu(self.track_local(x.reshape(n * b, k, o, ks * f)), 0.2)
                enc = self.track_bar(x.reshape(n * b, -1)).reshape(n, b, -1)
                given = (cond_track >= 0).to(enc.dtype)[:, None, None]
                parts.append(which + enc * given)
        return torch.cat(parts, dim=-1)


ARRANGEMENT_MAX_TRACKS = 8
"""Largest track count with arrangement conditioning (its chain has 2^T states a bar)."""


def track_indices(tracks, data_meta: dict | None, n_tracks: int, what: str) -> tuple[int, ...]:
    """Track names (from ``data_meta["tracks"]``) or indices -> sorted indices; ValueError when unknown."""
    names = [str(t).lower() for t in (data_meta or {}).get("tracks", [])]
    out = set()
    for t in tracks or ():
        if isinstance(t, int) or str(t).lstrip("-").isdigit():
            i = int(t)
        elif str(t).lower() in names:
            i = names.index(str(t).lower())
        else:
            raise ValueError(f"{what}: unknown track {t!r} (tracks: {', '.join(names) or f'0..{n_tracks - 1}'})")
        if not 0 <= i < n_tracks:
            raise ValueError(f"{what}: track index {i} out of range 0..{n_tracks - 1}")
        out.add(i)
    return tuple(sorted(out))


def bar_activity(roll: torch.Tensor) -> torch.Tensor:
    """bool [...]: where a roll [..., S, P] has any note in the bar (e.g. [N, T, B, S, P] -> [N, T, B])."""
    return (roll.flatten(-2) > 0).any(-1)


def bar_texture(roll: torch.Tensor) -> torch.Tensor:
    """bool [...]: where a roll [..., S, P] sounds two or more pitches at once at some step of the
    bar (a bar of chords or dyads); False for a bar of single notes or a silent one."""
    return ((roll > 0).sum(-1) >= 2).any(-1)


SLOT_NO_CHORD, SLOT_CHORD, SLOT_NO_INFO = 0, 1, 2
CHAIN_SLOTS = 3
"""The arrangement chain counts each bar in one of three slots: a bar without a chord in a phrase
that has chords (intros, breaks: POP909's piano is silent in 95% of them, in 0.1% of the
others), a bar with a chord, and a bar of a phrase without chord information. Drawing a bar
of a phrase without chord information pools all three."""


def bar_chord_slots(chords: torch.Tensor, has_chords: torch.Tensor | None = None) -> torch.Tensor:
    """Chain slot long [N, B] of every bar of chords [N, B, ...] (per-beat chord pitch classes):
    :data:`SLOT_CHORD` where the bar has a chord, :data:`SLOT_NO_CHORD` where it has none but the
    phrase has chords (``has_chords`` bool [N]; default: some bar of the phrase has one), else
    :data:`SLOT_NO_INFO`."""
    bar = torch.as_tensor(chords).flatten(2).ne(0).any(-1)                   # [N, B]
    has = bar.any(1) if has_chords is None else torch.as_tensor(has_chords).bool().reshape(-1)
    if has.shape[0] != bar.shape[0]:
        raise ValueError(f"has_chords: expected {bar.shape[0]} flags, got {has.shape[0]}")
    slots = torch.where(bar, SLOT_CHORD, SLOT_NO_CHORD)
    return torch.where(has[:, None], slots, torch.full_like(slots, SLOT_NO_INFO)).long()


def upgrade_arrangement_state(state: dict, prefix: str = "") -> dict:
    """Turn the arrangement chain of weights saved before the chord slots (``arrange_init`` [S],
    ``arrange_trans`` [S, S]) into today's shapes, in place: their counts go to the
    no-information slot, so such weights draw exactly as before. Only keys under ``prefix``
    (any module's, e.g. ``g_ema.arrange_init`` of a training checkpoint) change. Returns ``state``."""
    dims = {"arrange_init": 1, "arrange_trans": 2}
    for key in list(state):
        old = state[key]
        if not key.startswith(prefix) or dims.get(key.rsplit(".", 1)[-1]) != getattr(old, "ndim", None):
            continue
        new = old.new_zeros((CHAIN_SLOTS, *old.shape))
        new[SLOT_NO_INFO] = old
        state[key] = new
    return state


def arrangement_states(activity: torch.Tensor) -> torch.Tensor:
    """Per-bar state numbers long [N, B] of an activity [N, T, B] (bit i set = track i plays)."""
    a = torch.as_tensor(activity).bool().long()
    weights = 2 ** torch.arange(a.shape[1], device=a.device)
    return (a * weights[None, :, None]).sum(1)


def keep_most_probable_pitch(probs: torch.Tensor, tracks: tuple[int, ...],
                             straight_through: bool = False, bars: torch.Tensor | None = None) -> torch.Tensor:
    """Zero every pitch but the most probable one per step for ``tracks`` of probs [N, T, B, S, P].

    The kept pitch passes its gradient. The zeroed ones get none, or with ``straight_through``
    the gradient of their (zeroed) output, as if they had been kept: the value is the same
    either way, but a loss that wants another pitch can then raise it. Other tracks are unchanged.
    ``bars`` (bool [N, len(tracks), B]) limits it to the bars marked True (others unchanged).
    """
    if not tracks:
        return probs
    idx = torch.as_tensor(list(tracks), device=probs.device)
    sel = probs[:, idx]                                                  # [N, t, B, S, P]
    top = torch.zeros_like(sel).scatter_(-1, sel.argmax(-1, keepdim=True), 1.0)
    if bars is not None:
        top = torch.where(bars.to(probs.device).bool()[..., None, None], top, torch.ones_like(top))
    keep = torch.ones_like(probs).index_copy(1, idx, top)
    if straight_through:
        return probs * keep + (probs - probs.detach()) * (1.0 - keep)
    return probs * keep


# --------------------------------------------------------------------------- generator
class Generator(nn.Module):
    """MuseGAN hybrid generator: temporal generators + bar generator (shared trunk, private branches).

    Every layer of the bar generator is a "kernel == stride" transposed convolution written as
    a reshape and a matrix multiply over a channels-last tensor ``[N*B, time, octave, C]``:
    latent -> [beats K, octaves O, c1] -> [steps S, O, c2] (shared trunk) -> per track
    [S, O, c3] -> [S, O * 12 = P] (private branches, a per-track weight via einsum).

    Args:
        n_tracks, n_bars, steps_per_bar, beats_per_bar, n_pitches: output size T, B, S, K, P.
        lowest_pitch: MIDI pitch of pitch index 0 (for chord pitch classes).
        n_styles: number of style labels (0 allowed: only the "unknown" style).
        z_dim: size Z of each latent.
        trunk_channels: (c1, c2) widths of the shared trunk.
        branch_channels: width c3 of each private branch.
        style_dim, chord_dim, track_cond_dim: conditioning embedding sizes (track_cond_dim 0 = off).
        binarize: "sigmoid" (output probabilities; threshold 0.5 at test time) or "deterministic"
            (binary neurons with the straight-through estimator, BinaryMuseGAN).
        bar_gate: add a learned gate per (track, bar): a small MLP of the bar's latents and
            conditions gives ``g`` in (0, 1) and the bar's probabilities are multiplied by it, so
            one number can silence a whole bar (``g < 0.5`` leaves nothing above the 0.5
            threshold). Starts open (``g`` = sigmoid(5) for every bar), so a generator trained
            without it keeps its output when the gate is added.
        arrangement: condition on an arrangement, float [N, T, B] in {0, 1}: which tracks play
            in which bars. It is fed to the trunk and the private branches, and a bar marked 0 is
            silent (its probabilities are multiplied by 0). In training it is the real phrase's;
            for generation :meth:`sample_latents` draws it from a first-order Markov chain over
            the per-bar track-activity states, counted on the training data
            (:meth:`fit_arrangement_prior`) separately for bars with and without a chord
            (:data:`CHAIN_SLOTS`), so the bars a chord progression leaves empty get the
            arrangement the data gives such bars. New layers start at zero, so a generator
            trained without it keeps its output on all-active arrangements.
        monophonic: indices of tracks that hold at most one pitch per step (e.g. a vocal
            melody): only the most probable pitch of each step is kept.
        texture: indices of tracks whose **texture** is part of the arrangement (needs
            ``arrangement``): one more row per such track, True where the track plays two or
            more pitches at once somewhere in the bar (:func:`bar_texture`: chords, dyads) and
            False for a bar of single notes, where the track keeps only its most probable pitch
            of each step. The chain draws it with the activity, so the share of single-note
            bars follows the data (POP909's bridge: 59% of its playing training bars), and the generator learns
            what the other bars hold. The arrangement is then float [N, T + len(texture), B].
        half_beat_channels: 0 (default) goes from beats to steps in one layer; a width ``h``
            puts a half-beat stage between them: beats [K, O, c1] -> half beats [2K, O, h] ->
            steps [S, O, c2], each a kernel-equals-stride layer with batch norm and ReLU, so
            the two halves of a beat get features of their own (eighth-note lines rather than
            whole-beat notes). Needs an even number of steps per beat.
    """

    def __init__(self, *, n_tracks: int = 3, n_bars: int = 4, steps_per_bar: int = 16, beats_per_bar: int = 4,
                 n_pitches: int = 84, lowest_pitch: int = 24, n_styles: int = 1, z_dim: int = 32,
                 trunk_channels: tuple[int, int] = (128, 64), branch_channels: int = 32, style_dim: int = 8,
                 chord_dim: int = 16, track_cond_dim: int = 16, binarize: str = "sigmoid",
                 bar_gate: bool = False, arrangement: bool = False, monophonic: tuple[int, ...] = (),
                 half_beat_channels: int = 0, texture: tuple[int, ...] = ()) -> None:
        super().__init__()
        if binarize not in ("sigmoid", "deterministic"):
            raise ValueError(f"binarize must be 'sigmoid' or 'deterministic', not {binarize!r}")
        if steps_per_bar % beats_per_bar:
            raise ValueError(f"steps_per_bar {steps_per_bar} must be a multiple of beats_per_bar {beats_per_bar}")
        if half_beat_channels < 0 or (half_beat_channels and (steps_per_bar // beats_per_bar) % 2):
            raise ValueError(f"half_beat_channels {half_beat_channels}: needs a width >= 0 and an even number of "
                             f"steps per beat (got {steps_per_bar // beats_per_bar})")
        texture = tuple(sorted({int(i) for i in texture}))
        if texture and not arrangement:
            raise ValueError("texture: needs arrangement conditioning (arrangement=True)")
        if any(not 0 <= i < n_tracks for i in texture):
            raise ValueError(f"texture: track indices must be in 0..{n_tracks - 1}, got {list(texture)}")
        if arrangement and n_tracks + len(texture) > ARRANGEMENT_MAX_TRACKS:
            raise ValueError(f"arrangement: at most {ARRANGEMENT_MAX_TRACKS} tracks and texture rows "
                             f"(2^rows bar states), got {n_tracks} + {len(texture)}")
        #: the constructor's keyword arguments (saved beside exported weights)
        self.config = dict(n_tracks=n_tracks, n_bars=n_bars, steps_per_bar=steps_per_bar,
                           beats_per_bar=beats_per_bar, n_pitches=n_pitches, lowest_pitch=lowest_pitch,
                           n_styles=n_styles, z_dim=z_dim, trunk_channels=list(trunk_channels),
                           branch_channels=branch_channels, style_dim=style_dim, chord_dim=chord_dim,
                           track_cond_dim=track_cond_dim, binarize=binarize, bar_gate=bool(bar_gate),
                           arrangement=bool(arrangement), monophonic=[])
        if half_beat_channels:  # only when on: weights saved before it existed keep their exact config
            self.config["half_beat_channels"] = int(half_beat_channels)
        if texture:  # the same
            self.config["texture"] = list(texture)
        self.texture = texture
        self.n_tracks, self.n_bars, self.steps_per_bar = n_tracks, n_bars, steps_per_bar
        self.beats_per_bar, self.n_pitches, self.lowest_pitch = beats_per_bar, n_pitches, lowest_pitch
        self.z_dim, self.binarize = z_dim, binarize
        self.set_monophonic(monophonic)
        # training-time only (not part of the saved config): see keep_most_probable_pitch
        self.monophonic_straight_through = False
        c1, c2 = trunk_channels
        c3 = branch_channels
        self.c1, self.c2, self.c3 = c1, c2, c3
        self.p_coarse, self.p_fine = _pitch_split(n_pitches)
        self.k_steps = steps_per_bar // beats_per_bar
        self.cond = Conditioner(n_tracks=n_tracks, n_bars=n_bars, steps_per_bar=steps_per_bar,
                                beats_per_bar=beats_per_bar, n_pitches=n_pitches, n_styles=n_styles,
                                style_dim=style_dim, chord_dim=chord_dim, track_cond_dim=track_cond_dim)
        hidden = 2 * z_dim
        # temporal generators: one z -> one latent per bar (kernel == stride over bars: an MLP)
        self.temporal_shared = nn.Sequential(nn.Linear(z_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                             nn.Linear(hidden, n_bars * z_dim))
        self.temporal_private1 = GroupedLinear(n_tracks, z_dim, hidden)
        self.temporal_private2 = GroupedLinear(n_tracks, hidden, n_bars * z_dim)
        # shared trunk, one bar at a time (bars folded into the batch)
        in_dim = 2 * z_dim + n_tracks * 2 * z_dim + self.cond.dim
        k, o = beats_per_bar, self.p_coarse
        self.trunk_in = nn.Linear(in_dim, k * o * c1)
        self.trunk_in_norm = nn.BatchNorm1d(k * o * c1)
        self.half_beat = int(half_beat_channels)
        if self.half_beat:
            hc = self.half_beat
            self.trunk_half = nn.Linear(c1, 2 * hc)                # beats -> half beats
            self.trunk_half_norm = nn.BatchNorm1d(hc)
            self.trunk_up = nn.Linear(hc, self.k_steps // 2 * c2)  # half beats -> steps
        else:
            self.trunk_up = nn.Linear(c1, self.k_steps * c2)        # beats -> steps (kernel == stride)
        self.trunk_up_norm = nn.BatchNorm1d(c2)
        # private branches: per-track bias from private latents + condition, then per-track weights
        t = n_tracks
        self.private_bias = GroupedLinear(t, 2 * z_dim + self.cond.dim, c2)
        self.branch_w = nn.Parameter(torch.randn(t, c2, c3) / math.sqrt(c2))
        self.branch_norm = nn.BatchNorm1d(t * c3)
        self.out_w = nn.Parameter(torch.randn(t, c3, self.p_fine) / math.sqrt(c3))   # octave -> pitches
        self.out_b = nn.Parameter(torch.zeros(t, self.p_fine))
        # per-track pitch prior; starts at sigmoid(-3) ~ 5% density (pianorolls are sparse)
        self.out_bias_pitch = nn.Parameter(torch.full((t, n_pitches), -3.0))
        # direct chord -> pitch path: a learned per-track weight on the chord tones of each step
        self.chord_gain = nn.Parameter(torch.zeros(t))
        # optional per-(track, bar) gate on the bar's probabilities (see the class docstring)
        self.bar_gate = None
        if bar_gate:
            self.bar_gate = nn.Sequential(nn.Linear(in_dim, 2 * z_dim), nn.ReLU(), nn.Linear(2 * z_dim, t))
            nn.init.zeros_(self.bar_gate[2].weight)
            nn.init.constant_(self.bar_gate[2].bias, BAR_GATE_OPEN / BAR_GATE_SCALE)
        # optional arrangement conditioning (see the class docstring); all-zero start
        self.has_arrangement = bool(arrangement)
        if arrangement:
            rows = self.arrangement_rows
            self.arrange_in = nn.Linear(rows, k * o * c1, bias=False)       # bar's arrangement -> trunk
            nn.init.zeros_(self.arrange_in.weight)
            self.arrange_bias = nn.Parameter(torch.zeros(t, rows, c2))      # bar's arrangement -> branch t
            n_states = 2 ** rows
            # Markov chain over per-bar states (bit i = row i of the arrangement: track i plays,
            # then the texture rows), counts per chord slot of the bar (CHAIN_SLOTS); all zero =
            # not fitted
            self.register_buffer("arrange_init", torch.zeros(CHAIN_SLOTS, n_states))
            self.register_buffer("arrange_trans", torch.zeros(CHAIN_SLOTS, n_states, n_states))

    @property
    def arrangement_rows(self) -> int:
        """Rows of the arrangement: one per track (plays in the bar), then one per texture track."""
        return self.n_tracks + len(self.texture)

    def arrangement_from_roll(self, roll: torch.Tensor) -> torch.Tensor:
        """The arrangement bool [N, rows, B] of rolls [N, T, B, S, P]: :func:`bar_activity` of every
        track, then :func:`bar_texture` of each texture track."""
        roll = torch.as_tensor(roll)
        rows = [bar_activity(roll)]
        if self.texture:
            rows.append(bar_texture(roll[:, list(self.texture)]))
        return torch.cat(rows, dim=1)

    def texture_bars(self, arrangement: torch.Tensor) -> dict[int, torch.Tensor]:
        """Texture track index -> its chord bars, bool [N, B], from an arrangement [N, rows, B]
        (:meth:`arrangement_from_roll`'s layout: the texture rows follow the tracks' rows)."""
        return {tr: arrangement[:, self.n_tracks + i].bool() for i, tr in enumerate(self.texture)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        upgrade_arrangement_state(state_dict, prefix)  # chains saved before the chord slots
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- latents
    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of one sample's latents (without the batch dimension)."""
        t, z = self.n_tracks, self.z_dim
        return {"shared": (z,), "shared_t": (z,), "private": (t, z), "private_t": (t, z)}

    def _trunk_input(self, latents: dict[str, torch.Tensor], cond: torch.Tensor):
        """Per-bar input of the trunk [N, B, in_dim] and the per-track latents [N, T, B, 2Z]."""
        t, b, z = self.n_tracks, self.n_bars, self.z_dim
        n = latents["shared"].shape[0]
        shared_t = self.temporal_shared(latents["shared_t"]).reshape(n, b, z)
        priv_t = self.temporal_private2(F.relu(self.temporal_private1(latents["private_t"])))
        priv_t = priv_t.reshape(n, t, b, z)
        priv = latents["private"][:, :, None, :].expand(n, t, b, z)
        priv_all = torch.cat([priv, priv_t], dim=-1)  # [N, T, B, 2Z]
        x = torch.cat([latents["shared"][:, None, :].expand(n, b, z), shared_t,
                       priv_all.permute(0, 2, 1, 3).reshape(n, b, t * 2 * z), cond], dim=-1)
        return x, priv_all

    def set_monophonic(self, tracks: tuple[int, ...]) -> None:
        """Make ``tracks`` (indices) the monophonic ones (at construction, or from a training
        schedule's phase on); the saved ``config`` follows, so exported weights generate the same way."""
        tracks = tuple(sorted({int(i) for i in tracks}))
        if any(not 0 <= i < self.n_tracks for i in tracks):
            raise ValueError(f"monophonic: track indices must be in 0..{self.n_tracks - 1}, got {list(tracks)}")
        self.monophonic = tracks
        self.config["monophonic"] = list(tracks)

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, arrangement: bool = True,
                       chords: torch.Tensor | None = None, has_chords: torch.Tensor | None = None
                       ) -> dict[str, torch.Tensor]:
        """Standard normal latents, dict of ``LATENT_KEYS`` -> [n, *shape] (drawn in that order).

        Drawn on ``generator``'s device (so a CPU generator gives the same numbers everywhere),
        then moved to ``device`` (default: the module's device). With arrangement conditioning
        (and ``arrangement``), bool ``arrangement`` [n, T, B] is drawn from the chain after them,
        each bar from the counts of its chord slot (:func:`bar_chord_slots` of ``chords``
        [n, B, K, 12], the chords the phrases will be decoded with, and ``has_chords`` [n]; None:
        no chord information); training passes ``arrangement=False`` and gives the real phrases' instead.
        """
        device = device if device is not None else self.out_w.device
        gen_device = generator.device if generator is not None else device
        out = {}
        for key, shape in self.latent_shapes().items():
            out[key] = torch.randn((n, *shape), generator=generator, device=gen_device).to(device)
        if self.has_arrangement and arrangement:  # after the Gaussians: their numbers do not depend on it
            slots = self._chord_slots(n, chords, has_chords)
            u = torch.rand((n, self.n_bars), generator=generator, device=gen_device)
            out[ARRANGEMENT_KEY] = self.sample_arrangement(u.cpu().double(), slots).to(device)
        return out

    # ----------------------------------------------------------------- arrangement prior
    @torch.no_grad()
    def fit_arrangement_prior(self, activity: torch.Tensor, chords: torch.Tensor | None = None,
                              has_chords: torch.Tensor | None = None) -> None:
        """Count the arrangement chain on real phrases: ``activity`` bool [N, T, B] (track plays in
        bar), each bar in the slot of its chords (:func:`bar_chord_slots` of ``chords``
        [N, B, K, 12] and ``has_chords`` [N]; without ``chords`` every bar is in the
        no-information slot)."""
        if not self.has_arrangement:
            raise ValueError("fit_arrangement_prior: this generator has no arrangement conditioning")
        a = torch.as_tensor(activity).bool()
        if a.dim() != 3 or tuple(a.shape[1:]) != (self.arrangement_rows, self.n_bars):
            raise ValueError(f"activity: expected [N, {self.arrangement_rows}, {self.n_bars}], got {list(a.shape)}")
        n = a.shape[0]
        slots = self._chord_slots(n, chords, has_chords)
        if slots is None:
            slots = torch.full((n, self.n_bars), SLOT_NO_INFO, dtype=torch.long)
        states = arrangement_states(a).cpu()                              # [N, B]
        s = 2 ** self.arrangement_rows
        init = torch.bincount(slots[:, 0] * s + states[:, 0], minlength=CHAIN_SLOTS * s).double()
        cells = (slots[:, 1:] * s + states[:, :-1]) * s + states[:, 1:]
        trans = torch.bincount(cells.reshape(-1), minlength=CHAIN_SLOTS * s * s).double()
        self.arrange_init.copy_(init.reshape(CHAIN_SLOTS, s).to(self.arrange_init))
        self.arrange_trans.copy_(trans.reshape(CHAIN_SLOTS, s, s).to(self.arrange_trans))

    def _chord_slots(self, n: int, chords: torch.Tensor | None, has_chords: torch.Tensor | None) -> torch.Tensor | None:
        """:func:`bar_chord_slots` (on the CPU) of ``n`` phrases' chords [n, B, ...], checked; None without chords."""
        if chords is None:
            return None
        chords = torch.as_tensor(chords)
        if chords.dim() < 2 or tuple(chords.shape[:2]) != (n, self.n_bars):
            raise ValueError(f"chords: expected [{n}, {self.n_bars}, ...], got {list(chords.shape)}")
        return bar_chord_slots(chords.cpu(), None if has_chords is None else torch.as_tensor(has_chords).cpu())

    def _chain_tables(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Sampling tables (first-bar CDF [3, S], row CDFs [3, S, S]) indexed by slot, where
        :data:`SLOT_NO_INFO` draws from all slots pooled; None while the chain is not fitted.

        A slot with no counts uses the pooled chain; a slot whose first bars were never seen
        uses the states its other bars took; a state never followed by another (in that slot)
        continues with the slot's first-bar distribution."""
        init = self.arrange_init.detach().cpu().double()
        trans = self.arrange_trans.detach().cpu().double()
        pooled_init, pooled_trans = init.sum(0), trans.sum(0)
        if pooled_init.sum() <= 0:
            return None

        def table(i: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            rows = torch.where(t.sum(1, keepdim=True) > 0, t, i[None])
            return torch.cumsum(i / i.sum(), 0), torch.cumsum(rows / rows.sum(1, keepdim=True), 1)

        pooled = table(pooled_init, pooled_trans)
        firsts, rows = [], []
        for k in range(CHAIN_SLOTS):
            if k == SLOT_NO_INFO or (init[k].sum() <= 0 and trans[k].sum() <= 0):
                f, r = pooled
            else:
                f, r = table(init[k] if init[k].sum() > 0 else trans[k].sum(0), trans[k])
            firsts.append(f)
            rows.append(r)
        return torch.stack(firsts), torch.stack(rows)

    @torch.no_grad()
    def sample_arrangement(self, u: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """Arrangements bool [N, T, B] from uniforms ``u`` [N, B] by inverse CDF along the chain,
        each bar drawn from its chord slot's counts (``slots`` long [N, B], :func:`bar_chord_slots`;
        None: no chord information, the slots pooled). All tracks play everywhere while the
        chain is not fitted (see :meth:`_chain_tables` for the other fallbacks).
        """
        n, b = u.shape
        full = 2 ** self.arrangement_rows - 1
        tables = self._chain_tables()
        if tables is None:
            states = torch.full((n, b), full, dtype=torch.long)
        else:
            cdf0, cdf = tables
            slots = torch.full((n, b), SLOT_NO_INFO, dtype=torch.long) if slots is None else slots.long().cpu()
            states = torch.empty((n, b), dtype=torch.long)
            states[:, 0] = torch.searchsorted(cdf0[slots[:, 0]], u[:, :1].contiguous(), right=True).clamp(max=full)[:, 0]
            for j in range(1, b):
                c = cdf[slots[:, j], states[:, j - 1]]
                states[:, j] = torch.searchsorted(c, u[:, j:j + 1].contiguous(), right=True).clamp(max=full)[:, 0]
        bits = (states[:, None, :] >> torch.arange(self.arrangement_rows)[None, :, None]) & 1
        return bits.bool()

    # ----------------------------------------------------------------- forward
    def logits(self, latents: dict[str, torch.Tensor], chords: torch.Tensor | None = None,
               has_chords: torch.Tensor | None = None, style: torch.Tensor | None = None,
               cond_roll: torch.Tensor | None = None, cond_track: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-sigmoid scores, float [N, T, B, S, P] (before any bar gate). Arguments as in :meth:`forward`."""
        return self._scores(latents, chords, has_chords, style, cond_roll, cond_track)[0]

    def _scores(self, latents: dict[str, torch.Tensor], chords: torch.Tensor | None,
                has_chords: torch.Tensor | None, style: torch.Tensor | None, cond_roll: torch.Tensor | None,
                cond_track: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(pre-sigmoid scores [N, T, B, S, P], bar-gate logits [N, T, B] or None, arrangement
        [N, rows, B] (:meth:`arrangement_of`) or None without arrangement conditioning)."""
        t, b, s, p, z = self.n_tracks, self.n_bars, self.steps_per_bar, self.n_pitches, self.z_dim
        k, o, ks = self.beats_per_bar, self.p_coarse, self.k_steps
        c1, c2, c3 = self.c1, self.c2, self.c3
        n = latents["shared"].shape[0]
        m = n * b
        cond = self.cond(n, chords, has_chords, style, cond_roll, cond_track)  # [N, B, C]
        x, priv_all = self._trunk_input(latents, cond)
        gate = self._gate_logits(x)
        pre = self.trunk_in(x.reshape(m, -1))
        arr = None
        if self.has_arrangement:
            arr = self.arrangement_of(latents, cond_roll, cond_track)           # [N, rows, B]
            arr_bar = arr.transpose(1, 2).reshape(m, arr.shape[1])              # [M, rows]
            pre = pre + self.arrange_in(arr_bar.to(pre.dtype))
        h = F.relu(self.trunk_in_norm(pre)).reshape(m, k, o, c1)                # [M, K, O, c1]
        units, per = k, ks                                                      # time units, steps per unit
        if self.half_beat:
            hc = self.half_beat
            h = self.trunk_half(h).reshape(m, k, o, 2, hc).transpose(2, 3)      # [M, K, 2, O, hc]
            h = F.relu(self.trunk_half_norm(h.reshape(m * 2 * k * o, hc))).reshape(m, 2 * k, o, hc)
            units, per = 2 * k, ks // 2
        h = self.trunk_up(h)                                                    # [M, units, O, per*c2]
        h = h.reshape(m, units, o, per, c2).transpose(2, 3).reshape(m * s * o, c2)  # [M*S*O, c2]
        h = F.relu(self.trunk_up_norm(h)).reshape(m, s * o, c2)
        bias_in = torch.cat([priv_all, cond[:, None].expand(n, t, b, cond.shape[-1])], dim=-1)  # [N, T, B, *]
        bias = self.private_bias(bias_in.permute(0, 2, 1, 3).reshape(m, t, -1))  # [M, T, c2]
        if arr is not None:
            bias = bias + torch.einsum("mu,tuc->mtc", arr_bar.to(bias.dtype), self.arrange_bias)
        # per-track branch: (h + bias_t) @ W_t = h @ W_t + bias_t @ W_t
        hb = torch.einsum("mxc,tcd->mxtd", h, self.branch_w)                    # [M, S*O, T, c3]
        hb = hb + torch.einsum("mtc,tcd->mtd", bias, self.branch_w)[:, None]
        hb = F.relu(self.branch_norm(hb.reshape(m * s * o, t * c3))).reshape(m, s * o, t, c3)
        out = torch.einsum("mxtd,tdf->mtxf", hb, self.out_w) + self.out_b[None, :, None, :]  # [M, T, S*O, 12]
        out = out.reshape(n, b, t, s, p).transpose(1, 2) + self.out_bias_pitch[None, :, None, None, :]
        if chords is not None:
            cmap = chord_pitch_map(chords.to(out.dtype), s, p, self.lowest_pitch)  # [N, B, S, P]
            if has_chords is not None:
                cmap = cmap * has_chords.to(out.dtype)[:, None, None, None]
            out = out + self.chord_gain[None, :, None, None, None] * cmap[:, None]
        return out, gate, arr

    def forward(self, latents: dict[str, torch.Tensor], chords: torch.Tensor | None = None,
                has_chords: torch.Tensor | None = None, style: torch.Tensor | None = None,
                cond_roll: torch.Tensor | None = None, cond_track: torch.Tensor | None = None,
                return_dense: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Generate phrases.

        Args:
            latents: dict from :meth:`sample_latents` (``shared`` [N, Z], ``shared_t`` [N, Z],
                ``private`` [N, T, Z], ``private_t`` [N, T, Z]).
            chords: float [N, B, K, 12] multi-hot chord pitch classes per beat, or None.
            has_chords: bool [N] (default: any chord note present).
            style: long [N] (-1 = unknown) or None.
            cond_roll: float [N, B, S, P] given track, or None; cond_track: long [N] (-1 = none).
        Returns:
            float [N, T, B, S, P]: probabilities (``binarize="sigmoid"``) or {0, 1} with
            straight-through gradients (``binarize="deterministic"``). The given track (if any)
            is pasted over its generated version. With ``return_dense``, also the probabilities
            before the one-pitch-per-step rules (texture and monophonic tracks), same shape.
        """
        logits, gate, arr = self._scores(latents, chords, has_chords, style, cond_roll, cond_track)
        probs = torch.sigmoid(logits)
        if gate is not None:
            probs = probs * torch.sigmoid(gate)[..., None, None]
        if arr is not None:
            probs = probs * arr[:, :self.n_tracks].to(probs.dtype)[..., None, None]
        dense = probs
        if arr is not None and self.texture:  # single-note bars of the texture tracks
            probs = keep_most_probable_pitch(probs, self.texture, self.monophonic_straight_through,
                                             bars=arr[:, self.n_tracks:] < 0.5)
        if self.monophonic:
            probs = keep_most_probable_pitch(probs, self.monophonic, self.monophonic_straight_through)
        out = threshold_straight_through(probs) if self.binarize == "deterministic" else probs
        out = paste_condition(out, cond_roll, cond_track)
        return (out, dense) if return_dense else out

    def arrangement_of(self, latents: dict[str, torch.Tensor], cond_roll: torch.Tensor | None = None,
                       cond_track: torch.Tensor | None = None) -> torch.Tensor:
        """The arrangement float [N, rows, B] the output follows (rows: :attr:`arrangement_rows`):
        ``latents["arrangement"]`` (bool or {0, 1}; all ones when absent: every track plays, no bar
        held to single notes), with a given track's rows set from its notes (where it plays, and
        its texture when it is a texture track)."""
        n, dev = latents["shared"].shape[0], latents["shared"].device
        rows = self.arrangement_rows
        arr = latents.get(ARRANGEMENT_KEY)
        if arr is None:
            return torch.ones(n, rows, self.n_bars, device=dev)
        arr = arr.to(device=dev, dtype=torch.float32)
        if tuple(arr.shape) != (n, rows, self.n_bars):
            raise ValueError(f"arrangement: expected [{n}, {rows}, {self.n_bars}], got {list(arr.shape)}")
        if cond_roll is not None and cond_track is not None and bool((cond_track >= 0).any()):
            on = (cond_track >= 0).to(arr.dtype)[:, None]                          # [N, 1]
            mask = torch.nn.functional.one_hot(cond_track.clamp(min=0), rows).to(arr.dtype) * on  # [N, rows]
            given = bar_activity(cond_roll).to(arr.dtype)[:, None, :].expand(n, rows, self.n_bars).clone()
            if self.texture:
                given[:, self.n_tracks:] = bar_texture(cond_roll).to(arr.dtype)[:, None, :]
            for i, tr in enumerate(self.texture):
                mask[:, self.n_tracks + i] = (cond_track == tr).to(arr.dtype) * on[:, 0]
            arr = arr * (1 - mask[..., None]) + given * mask[..., None]
        return arr

    def gates(self, latents: dict[str, torch.Tensor], chords: torch.Tensor | None = None,
              has_chords: torch.Tensor | None = None, style: torch.Tensor | None = None,
              cond_roll: torch.Tensor | None = None, cond_track: torch.Tensor | None = None) -> torch.Tensor:
        """The bar gates, float [N, T, B] in (0, 1) (all ones without ``bar_gate``)."""
        n = latents["shared"].shape[0]
        if self.bar_gate is None:
            return torch.ones(n, self.n_tracks, self.n_bars, device=latents["shared"].device)
        x, _ = self._trunk_input(latents, self.cond(n, chords, has_chords, style, cond_roll, cond_track))
        return torch.sigmoid(self._gate_logits(x))

    def _gate_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        """Bar-gate logits [N, T, B] from the trunk input [N, B, in_dim]; None without a gate."""
        return None if self.bar_gate is None else BAR_GATE_SCALE * self.bar_gate(x).transpose(1, 2)


# --------------------------------------------------------------------------- critic
class Critic(nn.Module):
    """WGAN critic: per-bar encoder (bars folded into the batch) then a phrase-level MLP.

    Per bar, the input is the T tracks plus one chord-tone map (chord pitch classes spread
    over the grid; zeros when there is no chord information). Layers are "kernel == stride"
    convolutions written as reshape + matrix multiply: pitches -> octaves [S, O, c1], steps ->
    beats [K, O, c2], beats -> bar [O, c2], then all octaves -> one bar vector. The given-track
    index and style join at the phrase level. No batch norm (the gradient penalty needs
    per-sample gradients).

    Args: like :class:`Generator`; ``channels`` = (c1, c2) widths of the bar encoder,
    ``hidden`` the phrase MLP width; ``onsets`` adds T input channels, each track's note starts
    (:func:`note_starts`, phrase-wide, so a note held from the step before is no new note), so
    the first layer sees where notes begin and which notes carry over a beat line (about twice
    the critic's cost per step at the shipped sizes on CPU; see the model card).
    ``arrangement_rows`` > 0 makes it a critic of (phrase, arrangement) pairs: each bar's
    arrangement (:meth:`Generator.arrangement_of`, the rows of a generator with arrangement
    conditioning: which tracks play, and the texture rows) enters the bar vector through a
    linear map (``arrange_in``, zero at the start, so such a critic first scores as one without
    it), so a generated bar that does not do what its arrangement says can be told from a real one.
    ``projection`` adds a projection term for the style (Miyato & Koyama 2018, "cGANs with
    Projection Discriminator"): the score gains the inner product of the phrase vector with a
    learned vector of the phrase's style (``style_proj``, zero at the start, so such a critic first
    scores as one without it). Concatenating an 8-number style embedding before the head alone
    lets the critic all but ignore the style; the inner product makes every style its own
    direction in the phrase features, so style-specific statistics (a jazz drummer's density)
    are held to that style's data.
    """

    def __init__(self, *, n_tracks: int = 3, n_bars: int = 4, steps_per_bar: int = 16, beats_per_bar: int = 4,
                 n_pitches: int = 84, lowest_pitch: int = 24, n_styles: int = 1, channels: tuple[int, int] = (64, 128),
                 hidden: int = 256, style_dim: int = 8, onsets: bool = False, arrangement_rows: int = 0,
                 projection: bool = False) -> None:
        super().__init__()
        self.onsets = bool(onsets)
        self.arrangement_rows = int(arrangement_rows)
        self.n_tracks, self.n_bars, self.steps_per_bar = n_tracks, n_bars, steps_per_bar
        self.beats_per_bar, self.n_pitches, self.lowest_pitch = beats_per_bar, n_pitches, lowest_pitch
        self.n_styles = n_styles
        c1, c2 = channels
        self.c1, self.c2 = c1, c2
        self.p_coarse, self.p_fine = _pitch_split(n_pitches)
        self.k_steps = steps_per_bar // beats_per_bar
        self.in_channels = 2 * n_tracks + 1 if self.onsets else n_tracks + 1
        self.pitch = nn.Linear(self.in_channels * self.p_fine, c1)     # 12 pitches x channels -> octave feature
        self.steps = nn.Linear(self.k_steps * c1, c2)                  # steps -> beats
        self.beats = nn.Linear(beats_per_bar * c2, c2)                 # beats -> bar
        self.bar = nn.Linear(self.p_coarse * c2, hidden)               # octaves -> bar vector
        self.style = nn.Embedding(n_styles + 1, style_dim)
        self.which_track = nn.Embedding(n_tracks + 1, style_dim)
        self.head = nn.Sequential(
            nn.Linear(n_bars * hidden + 2 * style_dim + 1, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))
        self.arrange_in = None  # last: the other layers draw the same initial weights either way
        if self.arrangement_rows:
            self.arrange_in = nn.Linear(self.arrangement_rows, hidden, bias=False)   # bar's arrangement -> bar vector
            nn.init.zeros_(self.arrange_in.weight)
        self.style_proj = None  # after the others, for the same reason
        if projection:
            self.style_proj = nn.Embedding(n_styles + 1, n_bars * hidden)   # style -> direction in phrase features
            nn.init.zeros_(self.style_proj.weight)

    def forward(self, roll: torch.Tensor, chords: torch.Tensor | None = None, has_chords: torch.Tensor | None = None,
                style: torch.Tensor | None = None, cond_track: torch.Tensor | None = None,
                arrangement: torch.Tensor | None = None) -> torch.Tensor:
        """Score phrases.

        Args:
            roll: float [N, T, B, S, P]. chords: [N, B, K, 12] or None; has_chords [N] bool;
            style [N] long (-1 unknown); cond_track [N] long (-1 none); arrangement [N, rows, B]
            (with ``arrangement_rows``; None: all zeros).
        Returns:
            float [N] critic scores (higher = more real).
        """
        n, t, b, s, p = roll.shape
        if (t, b, s, p) != (self.n_tracks, self.n_bars, self.steps_per_bar, self.n_pitches):
            raise ValueError(f"critic expects rolls [N, {self.n_tracks}, {self.n_bars}, {self.steps_per_bar}, "
                             f"{self.n_pitches}], got {tuple(roll.shape)}")
        dev, dtype = roll.device, roll.dtype
        k, ks, o, f = self.beats_per_bar, self.k_steps, self.p_coarse, self.p_fine
        m = n * b
        if chords is None:
            cmap = roll.new_zeros(n, b, s, p)
            has = torch.zeros(n, dtype=dtype, device=dev)
        else:
            cmap = chord_pitch_map(chords.to(dtype), s, p, self.lowest_pitch)
            has = (has_chords if has_chords is not None else chords.reshape(n, -1).amax(1) > 0).to(dtype)
            cmap = cmap * has[:, None, None, None]
        parts = [roll.permute(0, 2, 3, 4, 1), cmap[..., None]]
        if self.onsets:  # where each pitch starts sounding (soft for probabilities), across bar lines
            parts.append(note_starts(roll).to(dtype).permute(0, 2, 3, 4, 1))
        x = torch.cat(parts, dim=-1)                                            # [N, B, S, P, C]
        x = x.reshape(m, s, o, f * self.in_channels)
        h = F.leaky_relu(self.pitch(x), 0.2)                                   # [M, S, O, c1]
        h = h.reshape(m, k, ks, o, self.c1).transpose(2, 3).reshape(m, k, o, ks * self.c1)
        h = F.leaky_relu(self.steps(h), 0.2)                                   # [M, K, O, c2]
        h = h.transpose(1, 2).reshape(m, o, k * self.c2)
        h = F.leaky_relu(self.beats(h), 0.2)                                   # [M, O, c2]
        h = self.bar(h.reshape(m, o * self.c2))                                # [M, hidden]
        if self.arrange_in is not None and arrangement is not None:
            if tuple(arrangement.shape) != (n, self.arrangement_rows, b):
                raise ValueError(f"arrangement: expected [{n}, {self.arrangement_rows}, {b}], "
                                 f"got {list(arrangement.shape)}")
            h = h + self.arrange_in(arrangement.to(dtype).transpose(1, 2).reshape(m, self.arrangement_rows))
        h = F.leaky_relu(h, 0.2)
        h = h.reshape(n, -1)
        if style is None:
            style = torch.full((n,), -1, dtype=torch.long, device=dev)
        style = torch.where(style < 0, torch.full_like(style, self.n_styles), style)
        if cond_track is None:
            cond_track = torch.full((n,), -1, dtype=torch.long, device=dev)
        ct = torch.where(cond_track < 0, torch.full_like(cond_track, self.n_tracks), cond_track)
        score = self.head(torch.cat([h, self.style(style), self.which_track(ct), has[:, None]], dim=1)).squeeze(1)
        if self.style_proj is not None:
            score = score + (self.style_proj(style) * h).sum(1)
        return score


# --------------------------------------------------------------------------- losses, EMA
def widen_critic_for_onsets(weight: torch.Tensor, n_tracks: int, p_fine: int) -> torch.Tensor:
    """A critic's first-layer weight ``[c1, p_fine * (T+1)]`` (no onset inputs) as the weight of
    a critic with ``onsets=True``, ``[c1, p_fine * (2T+1)]``: the onset columns are zero, so the
    widened critic gives the same scores. Raises ValueError on any other shape."""
    c1, cols = weight.shape
    if cols != p_fine * (n_tracks + 1):
        raise ValueError(f"critic.pitch.weight has {cols} inputs, expected {p_fine} x {n_tracks + 1} "
                         f"(a critic without onset inputs)")
    w = weight.reshape(c1, p_fine, n_tracks + 1)                 # columns: fine pitch x channel
    pad = weight.new_zeros(c1, p_fine, n_tracks)
    return torch.cat([w, pad], dim=-1).reshape(c1, p_fine * (2 * n_tracks + 1))


def can_widen_arrangement(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """Whether :func:`widen_arrangement_weight` takes a weight of shape ``old`` to ``new``: the
    same shape but for one dimension (the rows'), larger in ``new``."""
    differ = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    return len(old) == len(new) and len(differ) == 1 and new[differ[0]] > old[differ[0]]


def widen_arrangement_weight(weight: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An arrangement weight of a generator without texture rows (``arrange_in.weight``
    [C, T], ``arrange_bias`` [T, T, c2]) in the ``shape`` of one with them ([C, T + X],
    [T, T + X, c2]): the texture rows come after the activity rows and get zero weights, so the
    widened generator gives the same scores wherever no bar is held to single notes. Raises
    ValueError unless ``shape`` differs from the weight's in the rows' dimension alone, and is larger."""
    shape, old = tuple(shape), tuple(weight.shape)
    if not can_widen_arrangement(old, shape):
        raise ValueError(f"arrangement weight of shape {list(old)} cannot widen to {list(shape)}")
    out = weight.new_zeros(shape)
    out[tuple(slice(0, d) for d in old)] = weight
    return out


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, weight: torch.Tensor | None = None,
                     **cond) -> torch.Tensor:
    """WGAN-GP penalty ``mean((||grad_x critic(x)||_2 - 1)^2)`` at random interpolates.

    Args:
        critic: callable ``critic(x, **cond) -> [N]``.
        real, fake: float [N, ...] of the same shape.
        weight: interpolation weights [N] in [0, 1] (drawn uniformly when None).
    Returns:
        scalar tensor (multiply by lambda = 10 yourself), differentiable w.r.t. the critic.
    """
    n = real.shape[0]
    if weight is None:
        weight = torch.rand(n, device=real.device, dtype=real.dtype)
    w = weight.reshape(n, *([1] * (real.dim() - 1))).to(real.dtype)
    x = (w * real + (1 - w) * fake.detach()).requires_grad_(True)
    score = critic(x, **cond)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    norm = grad.reshape(n, -1).norm(2, dim=1)
    return ((norm - 1) ** 2).mean()


def density_matching_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """1-D Wasserstein distance between the per-bar note densities of a generated and a real batch.

    For each track, the active cells of every bar (``sum`` over steps and pitches; soft for
    probabilities) form one sample per (phrase, bar); the two batches' samples are sorted and
    compared pairwise (the exact W1 distance between two empirical distributions of equal size),
    divided by the real batch's mean density plus one. The result is the mean over tracks.
    The critic sees whole phrases and lets the generator fill nearly every bar (the empty-bar
    rate of POP909's melody is 22%); this term asks for the data's mix of rests, sparse and busy
    bars without saying which bar gets which.

    Args:
        fake, real: float [N, tracks, bars, steps, pitches] (fake may be probabilities).
    Returns:
        scalar tensor, 0 when the two batches hold the same bar densities in any order.
    """
    if fake.shape != real.shape or fake.dim() != 5:
        raise ValueError(f"fake and real should both be [N, tracks, bars, steps, pitches], got "
                         f"{tuple(fake.shape)} and {tuple(real.shape)}")
    df = fake.sum(dim=(-1, -2)).transpose(0, 1).reshape(fake.shape[1], -1)  # [tracks, N * bars]
    dr = real.to(fake.dtype).sum(dim=(-1, -2)).transpose(0, 1).reshape(real.shape[1], -1)
    gap = (df.sort(dim=1).values - dr.sort(dim=1).values).abs().mean(dim=1)
    return (gap / (dr.mean(dim=1) + 1.0)).mean()


STAT_TERMS = ("density", "onsets", "polyphony", "upc", "tonal")
"""Statistics of the thresholded roll (:func:`roll_statistics`): the default terms of
:func:`statistics_matching_loss`, in order."""
HARD_STAT_TERMS = STAT_TERMS + ("short", "groove", "chords", "lengths", "offsets", "chord_bars")
"""Every statistic :func:`roll_statistics` computes: the defaults, ``short`` (one-step notes per
bar: with ``onsets``, the metrics' QN), ``groove`` (each phrase's groove consistency, GC),
``chords`` (steps sounding two or more pitches per bar: with ``density``, the metrics'
POLY_RATE), ``lengths`` (the length of every note, up to a bar: the whole distribution the
metrics' QN reads one point of), ``offsets`` (note onsets per bar at each step position within
the beat: on the beat, on the half beat, ...) and ``chord_bars`` (``chords`` over the texture
tracks' chord bars only: needs the bars' texture)."""
ALL_STAT_TERMS = HARD_STAT_TERMS + ("activity",)
"""Every term :func:`statistics_matching_loss` knows: the above and ``activity``, the highest
probability of each (phrase, bar) against the real bar's 0 / 1 (empty / not)."""


def check_stat_terms(terms, known: tuple[str, ...] = ALL_STAT_TERMS, what: str = "statistics") -> None:
    """Raise ValueError naming any of ``terms`` not in ``known``."""
    unknown = set(terms) - set(known)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; choose from {list(known)}")


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1-D Wasserstein-1 distance between two sets of samples (1-D tensors, any sizes).

    Equal sizes: mean absolute difference of the sorted samples (exact). Unequal sizes: the
    same on ``min(len)`` evenly spaced quantiles of each (levels ``(2i + 1) / 2k``, read off the
    sorted samples: the empirical inverse distribution function, no interpolation).
    Returns a scalar; 0 when either set is empty.
    """
    if a.dim() != 1 or b.dim() != 1:
        raise ValueError(f"samples should be 1-D, got {tuple(a.shape)} and {tuple(b.shape)}")
    b = b.to(a.dtype)
    if a.numel() == 0 or b.numel() == 0:
        return a.sum() * 0.0
    if a.numel() == b.numel():
        return (a.sort().values - b.sort().values).abs().mean()
    k = min(a.numel(), b.numel())
    mid = 2 * torch.arange(k, device=a.device) + 1  # quantile levels (2i + 1) / 2k

    def quantiles(x: torch.Tensor) -> torch.Tensor:  # the empirical inverse distribution function
        return x.sort().values[(mid * x.numel()) // (2 * k)]

    return (quantiles(a) - quantiles(b)).abs().mean()


def _pitch_class_fold(n_pitches: int, lowest_pitch: int, device, dtype) -> torch.Tensor:
    """One-hot [P, 12] map from pitch index to true pitch class (``(lowest_pitch + i) % 12``)."""
    pcs = (torch.arange(n_pitches, device=device) + int(lowest_pitch)) % 12
    return F.one_hot(pcs, 12).to(dtype)


def _tonal_matrix(device, dtype) -> torch.Tensor:
    """Harte et al. (2006) tonal centroid matrix [12, 6] (pitch class -> 6-D)."""
    pcs = torch.arange(12, dtype=torch.float64)
    cols = []
    for radius, angle in ((1.0, 7 * math.pi / 6), (1.0, 3 * math.pi / 2), (0.5, 2 * math.pi / 3)):
        cols += [radius * torch.sin(pcs * angle), radius * torch.cos(pcs * angle)]
    return torch.stack(cols, dim=1).to(device=device, dtype=dtype)


def roll_statistics(roll: torch.Tensor, lowest_pitch: int, pitched: list[bool] | None = None,
                    terms: tuple[str, ...] = STAT_TERMS, beats_per_bar: int = 4,
                    chord_bars: dict[int, torch.Tensor] | None = None) -> dict[str, list[torch.Tensor]]:
    """Per-track samples of the musical statistics that :func:`statistics_matching_loss` matches.

    Args:
        roll: {0, 1}-valued float [N, T, B, S, P] (differentiable, e.g. from
            :func:`threshold_straight_through`).
        lowest_pitch: MIDI pitch of pitch index 0.
        pitched: one flag per track (False for drums: no pitch classes); default all True.
        terms: which of :data:`HARD_STAT_TERMS` to compute.
        beats_per_bar: beats in a bar (for ``offsets``; must divide the bar's steps).
        chord_bars: for ``chord_bars``, track index -> bool [N, B]: the bars that track should
            play as chords (e.g. the real phrase's texture rows of the arrangement).
    Returns:
        dict term -> list of 1-D sample tensors (one per track, or per pitched pair for
        ``"tonal"``):
        ``density`` active cells per (phrase, bar); ``onsets`` note onsets per (phrase, bar),
        bars joined; ``polyphony`` sounding pitches per (phrase, step); ``upc`` used pitch
        classes per (phrase, bar) (0 for an empty bar); ``tonal`` per (phrase, bar) where both
        tracks of a pair sound, the distance between their tonal centroids (metrics' TD);
        ``short`` notes lasting exactly one step per (phrase, bar) (bars joined; 1 - their share
        of the onsets is the metrics' QN at two steps); ``groove`` per phrase with at least two
        bars holding onsets, one minus the mean over
        those bars' pairs of the fraction of steps where one bar has an onset and the other not
        (metrics' GC; an onset is a note start, bars joined, or any hit for an unpitched track);
        ``chords`` steps sounding two or more pitches per (phrase, bar) (the numerator of the
        metrics' POLY_RATE; per bar, a larger count for one step too many than ``polyphony``'s
        per-step samples give, so its gradient is not diluted over the silent steps);
        ``chord_bars`` the same count, for each track of ``chord_bars``, over the bars it marks
        only (a chord bar played as a line then counts against the data's chord bars, where a
        batch-wide ``chords`` lets another bar make up for it);
        ``lengths`` the length in steps of every note (bars joined, counted up to ``S`` steps: a
        longer note counts ``S``), one sample per note start; its gradient reaches the cells
        that hold each note on, so it can shorten or lengthen notes; ``offsets`` for each step
        position ``j`` within the beat (``S / beats_per_bar`` of them), the note onsets per
        (phrase, bar) at that position (bars joined): ``S / beats_per_bar`` sample tensors per
        track, so on-beat, off-beat and half-beat starts are matched separately.
    """
    check_stat_terms(terms, HARD_STAT_TERMS)
    if roll.dim() != 5:
        raise ValueError(f"roll should be [N, tracks, bars, steps, pitches], got {tuple(roll.shape)}")
    n, t, b, s, p = roll.shape
    if "offsets" in terms and (beats_per_bar < 1 or s % beats_per_bar):
        raise ValueError(f"offsets: beats_per_bar {beats_per_bar} must divide the bar's {s} steps")
    pitched = [True] * t if pitched is None else list(pitched)
    if len(pitched) != t:
        raise ValueError(f"pitched has {len(pitched)} flags for {t} tracks")
    if "chord_bars" in terms:
        if not chord_bars:
            raise ValueError("chord_bars: needs the chord bars of at least one texture track (model.texture)")
        for i, mask in chord_bars.items():
            if not 0 <= int(i) < t or tuple(mask.shape) != (n, b):
                raise ValueError(f"chord_bars: expected track indices in 0..{t - 1} with bool [{n}, {b}] "
                                 f"masks, got track {i} with {list(mask.shape)}")
    out: dict[str, list[torch.Tensor]] = {k: [] for k in terms}
    fold = _pitch_class_fold(p, lowest_pitch, roll.device, roll.dtype)
    for i in range(t):
        x = roll[:, i]  # [N, B, S, P]
        if "density" in terms:
            out["density"].append(x.sum(dim=(2, 3)).reshape(-1))
        starts = note_starts(x) if {"onsets", "short", "groove", "lengths", "offsets"} & set(terms) else None
        if "onsets" in terms:
            out["onsets"].append(starts.sum(dim=(2, 3)).reshape(-1))
        if "short" in terms:
            after = F.pad(x.reshape(n, b * s, p), (0, 0, 0, 1))[:, 1:].reshape(n, b, s, p)
            out["short"].append((starts * (1.0 - after)).sum(dim=(2, 3)).reshape(-1))
        if "lengths" in terms:
            out["lengths"].append(_note_lengths(x, starts, s))
        if "offsets" in terms:
            per_step = starts.sum(-1).reshape(n * b, beats_per_bar, s // beats_per_bar).sum(1)  # [N*B, ks]
            out["offsets"].extend(per_step.unbind(1))
        if "polyphony" in terms:
            out["polyphony"].append(x.sum(-1).reshape(-1))
        if "chords" in terms or "chord_bars" in terms:
            # 1 for a step of >= 2 pitches, 0 below; clamp passes the gradient at 1 and 2 pitches
            two_pitch_steps = (x.sum(-1) - 1.0).clamp(0.0, 1.0).sum(-1)          # [N, B]
        if "chords" in terms:
            out["chords"].append(two_pitch_steps.reshape(-1))
        if "chord_bars" in terms and i in chord_bars:
            out["chord_bars"].append(two_pitch_steps[chord_bars[i].to(x.device).bool()])
        if "groove" in terms:
            out["groove"].append(_groove_consistency(starts if pitched[i] else x))
        if "upc" in terms and pitched[i]:
            # a pitch class is used in a bar when any of its cells is on (max over steps, octaves)
            used = (x.amax(2)[..., None] * fold).amax(2)  # [N, B, 12]
            out["upc"].append(used.sum(-1).reshape(-1))
    if "tonal" in terms:
        chroma = roll.sum(3) @ fold  # duration-weighted [N, T, B, 12]
        tm = _tonal_matrix(roll.device, roll.dtype)
        idx = [i for i in range(t) if pitched[i]]
        for a_i, i in enumerate(idx):
            for j in idx[a_i + 1:]:
                ca, cb = chroma[:, i].reshape(-1, 12), chroma[:, j].reshape(-1, 12)
                sa, sb = ca.sum(-1), cb.sum(-1)
                both = (sa.detach() > 0) & (sb.detach() > 0)
                ta = (ca[both] / sa[both, None]) @ tm
                tb = (cb[both] / sb[both, None]) @ tm
                out["tonal"].append((ta - tb).square().sum(-1).clamp(min=1e-12).sqrt())
    return out


def note_starts(x: torch.Tensor) -> torch.Tensor:
    """{0, 1} float [..., B, S, P] where a note starts in rolls {0, 1} [..., B, S, P] (bars joined:
    a note held over a bar line starts once). On probabilities, ``x_t * (1 - x_{t-1})``: a soft
    onset."""
    *lead, b, s, p = x.shape
    flat = x.float().reshape(*lead, b * s, p)
    prev = F.pad(flat, (0, 0, 1, 0))[..., :-1, :]
    return (flat * (1.0 - prev)).reshape(x.shape)


def _note_lengths(x: torch.Tensor, starts: torch.Tensor, max_steps: int) -> torch.Tensor:
    """Lengths (1 to ``max_steps`` steps) of the notes starting in {0, 1} rolls [N, B, S, P]
    (bars joined), one per note start, as a 1-D tensor: a note's length is the sum over k of the
    product of its cells k steps on from the start (the run of 1s), so the gradient reaches every
    cell of the note and the one just after it."""
    n, b, s, p = x.shape
    flat = F.pad(x.reshape(n, b * s, p), (0, 0, 0, max_steps))            # [N, B*S + L, P]
    run = torch.ones_like(x.reshape(n, b * s, p))
    length = torch.zeros_like(run)
    for k in range(max_steps):
        run = run * flat[:, k:k + b * s]
        length = length + run
    return length[starts.reshape(n, b * s, p).detach() > 0.5]


def _groove_consistency(onsets: torch.Tensor) -> torch.Tensor:
    """Per-phrase groove consistency from one track's {0, 1} onset cells [N, B, S, P] (note starts,
    or every hit of an unpitched track), over phrases with >= 2 bars holding onsets."""
    b = onsets.shape[1]
    pattern = onsets.amax(-1)                                             # [N, B, S] onset steps
    has = pattern.detach().amax(-1) > 0                                   # [N, B]
    i, j = torch.triu_indices(b, b, 1, device=onsets.device)
    both = (has[:, i] & has[:, j]).to(onsets.dtype)                            # [N, pairs]
    # for {0, 1} patterns |a - b| = a + b - 2ab: the fraction of steps where exactly one has an onset
    dist = (pattern[:, i] + pattern[:, j] - 2 * pattern[:, i] * pattern[:, j]).mean(-1)
    count = both.sum(-1)
    keep = count > 0
    return 1.0 - (dist * both).sum(-1)[keep] / count[keep]


def statistics_matching_loss(fake: torch.Tensor, real: torch.Tensor, lowest_pitch: int,
                             pitched: list[bool] | None = None, terms: tuple[str, ...] = STAT_TERMS,
                             beats_per_bar: int = 4,
                             chord_bars: dict[int, torch.Tensor] | None = None,
                             groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Distribution matching of musical statistics between a generated and a real batch.

    The generated probabilities are thresholded at 0.5 with the straight-through estimator, so
    each statistic is that of the music generation writes: empty bars count as empty, a melody
    step with two pitches counts as two. For every term of :func:`roll_statistics` and every
    track (or pair), the 1-D Wasserstein distance between the generated and the real samples
    (:func:`wasserstein_1d`) is divided by the real samples' mean plus one; each term is the
    mean over tracks. A feature-matching signal (Salimans et al. 2016) on the quantities the
    metrics measure: it asks for the data's mix of rests, busy bars, chords and single notes
    without saying which bar gets which.

    The ``activity`` term (not in the default ``terms``) works on the probabilities themselves:
    per track, the highest probability of every (phrase, bar) against the real bars' 0 (empty)
    or 1, so that the least active generated bars are pushed toward silence in the proportion
    the data has empty bars; its gradient reaches exactly those bars (and their bar gates).

    Args:
        fake: float [N, T, B, S, P] probabilities; real: {0, 1} [N', T, B, S, P].
        lowest_pitch, pitched, beats_per_bar: as in :func:`roll_statistics`.
        terms: any of :data:`ALL_STAT_TERMS`.
        chord_bars: for ``chord_bars``, as in :func:`roll_statistics`, the same bars of both
            batches (so ``fake`` and ``real`` hold as many phrases: the generated ones follow the
            real ones' arrangement).
        groups: int [N] labels shared by both batches (the generated phrase i was made with the
            label of the real phrase i, e.g. its style): each term is then matched within every
            group and averaged with the groups' sizes as weights, so that each label's music is
            held to its own statistics rather than only the pooled batch (whose errors can cancel
            between labels). ``fake`` and ``real`` must hold as many phrases.
    Returns:
        dict term -> scalar tensor (0 for identical statistics in any order).
    """
    if fake.dim() != 5 or real.dim() != 5 or fake.shape[1:] != real.shape[1:]:
        raise ValueError(f"fake and real should both be [N, tracks, bars, steps, pitches] with the same "
                         f"tracks and grid, got {tuple(fake.shape)} and {tuple(real.shape)}")
    check_stat_terms(terms)
    if groups is not None:
        if fake.shape[0] != real.shape[0] or tuple(groups.shape) != (fake.shape[0],):
            raise ValueError(f"groups: expected one label per phrase of two batches of as many phrases, got "
                             f"{list(groups.shape)} labels for {fake.shape[0]} and {real.shape[0]} phrases")
        groups = groups.to(fake.device)
        total: dict[str, torch.Tensor] = {}
        for label in torch.unique(groups):
            keep = groups == label
            part = statistics_matching_loss(
                fake[keep], real[keep], lowest_pitch, pitched, terms, beats_per_bar,
                None if chord_bars is None else {i: m.to(keep.device)[keep] for i, m in chord_bars.items()})
            share = keep.sum().to(fake.dtype) / groups.numel()
            for k, v in part.items():
                total[k] = total.get(k, 0.0) + share * v
        return total
    hard = tuple(k for k in terms if k in HARD_STAT_TERMS)
    if "chord_bars" in terms and fake.shape[0] != real.shape[0]:
        raise ValueError(f"chord_bars: fake and real should hold as many phrases, got {fake.shape[0]} and {real.shape[0]}")
    real = (real > 0.5).to(fake.dtype)
    sf = roll_statistics(threshold_straight_through(fake), lowest_pitch, pitched, hard, beats_per_bar, chord_bars)
    with torch.no_grad():
        sr = roll_statistics(real, lowest_pitch, pitched, hard, beats_per_bar, chord_bars)
    if "activity" in terms:
        for stats, roll in ((sf, fake), (sr, real)):  # highest probability of each bar, per track
            stats["activity"] = list(roll.amax(dim=(3, 4)).transpose(0, 1).reshape(roll.shape[1], -1))
    out = {}
    for k in terms:
        gaps = [wasserstein_1d(a, r) / (r.mean() + 1.0 if r.numel() else 1.0) for a, r in zip(sf[k], sr[k])]
        out[k] = torch.stack(gaps).mean() if gaps else fake.sum() * 0.0
    return out


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``p_ema <- decay * p_ema + (1 - decay) * p`` for parameters; buffers are copied."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
