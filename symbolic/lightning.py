"""Lightning training of the MuseGAN composer: WGAN-GP with manual optimisation, generator EMA.

One ``training_step`` = one critic step on one batch; every ``n_critic``-th step is followed by
one generator step (Adam, lr 2e-4, betas (0.5, 0.9), lambda_GP 10, as in MuseGAN). Note that
Lightning's ``global_step`` (and so ``--trainer.max_steps``) counts every ``optimizer.step()``
call, critic and generator alike: with ``n_critic = 5``, 6 global steps = 1 generator step.
The logged ``train/g_steps`` counts generator steps.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from pipeline.training import check_at_least_one, check_ranges
from symbolic.export import export_generator
from symbolic.generate import check_legato, check_track_taus
from symbolic.metrics import share_distance
from symbolic.modules import (ARRANGEMENT_KEY, STAT_TERMS, Critic, Generator, bar_activity, check_stat_terms,
                              count_parameters, density_matching_loss, ema_update, gradient_penalty, note_starts,
                              statistics_matching_loss, track_indices, upgrade_arrangement_state,
                              can_widen_arrangement, widen_arrangement_weight, widen_critic_for_onsets)


SCHEDULE_KEYS = ("density_weight", "stats_weight", "stats_terms", "stats_by_style", "monophonic",
                 "monophonic_straight_through")
"""The settings a ``schedule`` phase may change (loss terms and monophony, no layer shapes)."""

OPTIONAL_PARTS = (".bar_gate.", ".arrange_", "critic.style_proj.")
"""Generator and critic tensors ``model.init_from`` may find missing (parts added to a trained model);
they keep their initialisation."""


def stat_term_weights(terms, what: str = "stats_terms") -> dict[str, float]:
    """``stats_terms`` as a mapping term -> weight: a list of terms weighs each 1, a mapping
    ``{lengths: 3, chords: 1}`` gives its own weights (numbers >= 0). Raises ValueError naming
    an unknown term or a bad weight."""
    if isinstance(terms, str):
        raise ValueError(f"{what}: expected a list of terms or a mapping term -> weight, got {terms!r}")
    if isinstance(terms, dict):
        out = {}
        for k, v in terms.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"{what}: the weight of {k!r} must be a number >= 0, got {v!r}")
            out[str(k)] = float(v)
    else:
        out = {str(k): 1.0 for k in terms}
    check_stat_terms(tuple(out), what=what)
    return out


def check_schedule(schedule: list[dict] | None, data_meta: dict | None, n_tracks: int) -> list[dict]:
    """Validate a training ``schedule`` (see :class:`MuseGANModule`); track names in a phase's
    ``monophonic`` become indices. Raises ValueError naming the bad phase."""
    out, last = [], -1
    for i, phase in enumerate(schedule or []):
        where = f"schedule[{i}]"
        if not isinstance(phase, dict):
            raise ValueError(f"{where}: expected a mapping like {{from_step: 5000, stats_weight: 15}}, got {phase!r}")
        unknown = sorted(set(phase) - set(SCHEDULE_KEYS) - {"from_step"})
        if unknown:
            raise ValueError(f"{where}: unknown setting {unknown[0]!r} (a phase may set: {', '.join(SCHEDULE_KEYS)})")
        step = phase.get("from_step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{where}: from_step must be a generator step count >= 0, got {step!r}")
        if step <= last:
            raise ValueError(f"{where}: from_step {step} is not after the previous phase's {last}")
        last = step
        phase = dict(phase)
        for key in ("density_weight", "stats_weight"):
            if key in phase:
                value = phase[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{where}: {key} must be a number >= 0, got {value!r}")
                phase[key] = float(value)
        if "stats_terms" in phase:
            phase["stats_terms"] = stat_term_weights(phase["stats_terms"], what=f"{where}.stats_terms")
        if "monophonic" in phase:
            phase["monophonic"] = track_indices(phase["monophonic"], data_meta, n_tracks, f"{where}.monophonic")
        for key in ("monophonic_straight_through", "stats_by_style"):
            if key in phase:
                if not isinstance(phase[key], bool):
                    raise ValueError(f"{where}: {key} must be true or false, got {phase[key]!r}")
        out.append(phase)
    return out


# --------------------------------------------------------------------------- inline metrics
def roll_metrics(roll: torch.Tensor, chords: torch.Tensor | None = None, has_chords: torch.Tensor | None = None,
                 lowest_pitch: int = 24, qn_min_steps: int = 2) -> dict[str, torch.Tensor]:
    """Simple per-batch metrics of binary phrases (the full set lives in ``symbolic.metrics``).

    Args:
        roll: {0, 1} float or bool [N, T, B, S, P].
        chords: float [N, B, K, 12] or None; has_chords: bool [N].
        lowest_pitch: MIDI pitch of pitch index 0 (pitch classes are ``(lowest_pitch + i) % 12``).
        qn_min_steps: a note is "qualified" when it lasts at least this many steps.
    Returns:
        dict of scalar tensors:
        ``empty_bar_rate`` fraction of (phrase, track, bar) with no note;
        ``upc`` mean number of used pitch classes in a non-empty (track, bar);
        ``qualified_note_rate`` fraction of notes (runs of active steps, bars joined) lasting
        at least ``qn_min_steps`` steps (nan-free: 0 when there is no note);
        ``notes_per_bar`` mean note onsets per (track, bar);
        ``chord_tone_rate`` (when chords are given) fraction of note onsets in phrases with
        chords whose pitch class belongs to the chord of that beat.
    """
    x = roll.float() > 0.5
    n, t, b, s, p = x.shape
    active = bar_activity(x)  # [N, T, B]
    out = {"empty_bar_rate": 1.0 - active.float().mean()}
    pc_idx = (torch.arange(p, device=x.device) + lowest_pitch) % 12
    pcs = torch.zeros(n, t, b, 12, device=x.device).index_add_(3, pc_idx, x.any(3).float())  # [N, T, B, 12]
    used = (pcs > 0).float().sum(-1)
    out["upc"] = (used * active).sum() / active.float().sum().clamp(min=1)
    flat = x.reshape(n, t, b * s, p)
    onsets = note_starts(x).reshape(flat.shape) > 0
    n_notes = onsets.float().sum()
    if qn_min_steps <= 1:
        qualified = n_notes
    else:
        run = onsets
        for k in range(1, qn_min_steps):
            run = run & F.pad(flat, (0, 0, 0, k))[:, :, k:]  # still sounding k steps after the onset
        qualified = run.float().sum()
    out["qualified_note_rate"] = qualified / n_notes.clamp(min=1)
    out["notes_per_bar"] = n_notes / (n * t * b)
    if chords is not None:
        from symbolic.modules import chord_pitch_map
        cmap = chord_pitch_map(chords.float(), s, p, lowest_pitch) > 0.5  # [N, B, S, P]
        has = has_chords if has_chords is not None else chords.reshape(n, -1).amax(1) > 0
        on = onsets.reshape(n, t, b, s, p) & has[:, None, None, None, None]
        out["chord_tone_rate"] = (on & cmap[:, None]).float().sum() / on.float().sum().clamp(min=1)
    return out


def pianoroll_image(roll: torch.Tensor, track_names: list[str] | None = None, threshold: float = 0.5) -> np.ndarray:
    """Draw one phrase [T, B, S, P] as an image, returned as uint8 [3, H, W] (CHW, for TensorBoard)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = roll.detach().float().cpu().numpy()
    t, b, s, p = x.shape
    fig, axes = plt.subplots(t, 1, figsize=(8, 1.6 * t), squeeze=False)
    for i in range(t):
        ax = axes[i, 0]
        ax.imshow((x[i].reshape(b * s, p) > threshold).T, origin="lower", aspect="auto", cmap="Greys",
                  interpolation="nearest")
        for bar in range(1, b):
            ax.axvline(bar * s - 0.5, color="tab:red", linewidth=0.6)
        ax.set_ylabel(track_names[i] if track_names and i < len(track_names) else f"track {i}", fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].transpose(2, 0, 1).copy()
    plt.close(fig)
    return img


# --------------------------------------------------------------------------- LightningModule
class MuseGANModule(L.LightningModule):
    """WGAN-GP training of :class:`symbolic.modules.Generator` against :class:`Critic`.

    Shape arguments are linked from the data module by the training CLI. Training arguments:
    ``lr`` (Adam, both nets), ``betas``, ``n_critic`` critic steps per generator step,
    ``gp_lambda``, ``ema_decay`` (generator EMA, with a warm-up ``min(decay, (1+g)/(10+g))``),
    ``p_cond_track`` probability that a phrase is trained in accompaniment mode (one random
    real track given to generator and critic), ``p_drop_chords`` / ``p_drop_style``
    probabilities of hiding the chords / style (so the "unknown" paths are learned),
    ``image_every`` generator steps between logged pianoroll images (0 = never),
    ``density_weight`` weight of :func:`symbolic.modules.density_matching_loss` (the per-bar note
    density distribution of generated vs. real phrases) in the generator loss (0 = off),
    ``stats_weight`` weight of :func:`symbolic.modules.statistics_matching_loss` (the
    distributions of per-bar density, onsets, used pitch classes, per-step polyphony and
    tonal distance of the thresholded output vs. real phrases; 0 = off) and ``stats_terms``
    which terms (default ``symbolic.modules.STAT_TERMS``; ``short``, ``groove``, ``chords``,
    ``lengths``, ``offsets``, ``chord_bars`` (with ``texture``) and ``activity`` may be added:
    :data:`symbolic.modules.ALL_STAT_TERMS`): a list
    (each term weighs 1) or a mapping term -> weight (:func:`stat_term_weights`).
    ``stats_by_style`` matches those statistics within each style label of the batch (the
    generated phrase takes its real partner's label) instead of over the pooled batch, so that
    every style is held to its own statistics (``groups`` of the loss).
    ``bar_gate`` adds the generator's per-(track, bar) gate (:class:`symbolic.modules.Generator`).
    ``arrangement`` conditions the generator on which tracks play in which bars: the real
    phrase's in training, and a Markov chain counted on the training phrases (at ``fit`` setup)
    for generation. ``monophonic`` names (or indices) the tracks that keep one pitch a step;
    ``monophonic_straight_through`` passes the training gradient to their dropped pitches too
    (:func:`symbolic.modules.keep_most_probable_pitch`; generation is the same either way).
    ``schedule`` changes those loss and monophony settings during one run: a list of phases,
    each ``{"from_step": G, <any of SCHEDULE_KEYS>: value}``, in increasing ``from_step``
    (generator steps); from step G on, a phase's values replace the ones above (and those of
    earlier phases) — e.g. a plain WGAN first, statistics matching later, a monophonic melody
    last. It follows the generator step count, so a resumed run picks up its phase.
    ``init_from`` starts a new run from a training checkpoint's weights (generator, EMA, critic)
    and step counters, with fresh optimisers; parameters the checkpoint lacks (a bar gate added
    since) keep their initialisation. Ignored when the run itself resumes (``--ckpt_path``).
    ``g_half_beat_channels`` puts a half-beat stage of that width between the generator's beat
    and step layers (0 = none; :class:`symbolic.modules.Generator`'s ``half_beat_channels``).
    ``release`` ({track: tau}) goes to the exported card: when the composer binarises, a held
    note of such a track ends where another of its notes starts unless its probability there
    is at least tau (:func:`symbolic.generate.release_held_notes`); training never uses it.
    ``legato`` ({track: tau}, monophonic tracks only, from the start or from a schedule phase)
    goes to the card too: where such a track's note follows another at once, the earlier pitch
    also sounds at the new note's first step if its probability there is at least tau
    (:func:`symbolic.generate.legato_overlaps`); training never uses it either.
    ``d_onsets`` gives the critic each track's note starts as extra inputs (``Critic(onsets=True)``).
    ``texture`` names (or indices) tracks whose per-bar texture joins the arrangement (needs
    ``arrangement``; :class:`symbolic.modules.Generator`'s ``texture``): bars of single notes and
    bars of chords, the real phrase's in training, drawn by the chain for generation.
    ``d_arrangement`` gives the critic the arrangement too (``Critic(arrangement_rows=...)``; needs
    ``arrangement``): the real phrase's, for the real and the generated phrase alike.
    ``d_projection`` adds the critic's projection term for the style (``Critic(projection=True)``;
    a run may start from a checkpoint without it through ``init_from``).
    """

    def __init__(self, *, n_tracks: int = 3, n_bars: int = 4, steps_per_bar: int = 16, beats_per_bar: int = 4,
                 n_pitches: int = 84, lowest_pitch: int = 24, n_styles: int = 1, data_meta: dict | None = None,
                 z_dim: int = 32, g_trunk_channels: tuple[int, int] = (64, 32), g_branch_channels: int = 32,
                 style_dim: int = 8, chord_dim: int = 16, track_cond_dim: int = 16, binarize: str = "sigmoid",
                 d_channels: tuple[int, int] = (32, 64), d_hidden: int = 128, lr: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.9), n_critic: int = 5, gp_lambda: float = 10.0,
                 ema_decay: float = 0.999, p_cond_track: float = 0.25, p_drop_chords: float = 0.1,
                 p_drop_style: float = 0.1, image_every: int = 500, qn_min_steps: int = 2,
                 density_weight: float = 0.0, stats_weight: float = 0.0,
                 stats_terms: tuple[str, ...] | dict[str, float] = STAT_TERMS, stats_by_style: bool = False,
                 bar_gate: bool = False,
                 arrangement: bool = False, monophonic: tuple[str | int, ...] = (),
                 monophonic_straight_through: bool = False, schedule: list[dict] | None = None,
                 init_from: str | None = None, g_half_beat_channels: int = 0,
                 release: dict[str, float] | None = None, d_onsets: bool = False,
                 texture: tuple[str | int, ...] = (), d_arrangement: bool = False, d_projection: bool = False,
                 legato: dict[str, float] | None = None) -> None:
        super().__init__()
        check_at_least_one(**{"model.z_dim": z_dim, "model.n_critic": n_critic, "model.d_hidden": d_hidden,
                              "model.g_branch_channels": g_branch_channels, "model.qn_min_steps": qn_min_steps})
        inf = math.inf
        check_ranges(**{"model.lr": (lr, 0, inf, "(]"), "model.betas[0]": (betas[0], 0, 1, "[)"),
                        "model.betas[1]": (betas[1], 0, 1, "[)"), "model.gp_lambda": (gp_lambda, 0, inf, "[]"),
                        "model.ema_decay": (ema_decay, 0, 1, "[]"), "model.p_cond_track": (p_cond_track, 0, 1, "[]"),
                        "model.p_drop_chords": (p_drop_chords, 0, 1, "[]"),
                        "model.p_drop_style": (p_drop_style, 0, 1, "[]"), "model.image_every": (image_every, 0, inf, "[]"),
                        "model.density_weight": (density_weight, 0, inf, "[]"),
                        "model.stats_weight": (stats_weight, 0, inf, "[]")})
        self.save_hyperparameters()
        self.automatic_optimization = False
        self._base_monophonic = track_indices(monophonic, data_meta, n_tracks, "monophonic")
        self.generator = Generator(n_tracks=n_tracks, n_bars=n_bars, steps_per_bar=steps_per_bar,
                                   beats_per_bar=beats_per_bar, n_pitches=n_pitches, lowest_pitch=lowest_pitch,
                                   n_styles=n_styles, z_dim=z_dim, trunk_channels=tuple(g_trunk_channels),
                                   branch_channels=g_branch_channels, style_dim=style_dim, chord_dim=chord_dim,
                                   track_cond_dim=track_cond_dim, binarize=binarize, bar_gate=bar_gate,
                                   arrangement=arrangement, half_beat_channels=g_half_beat_channels,
                                   monophonic=self._base_monophonic,
                                   texture=track_indices(texture, data_meta, n_tracks, "texture"))
        self.generator.monophonic_straight_through = bool(monophonic_straight_through)
        if d_arrangement and not arrangement:
            raise ValueError("d_arrangement: needs arrangement conditioning (model.arrangement true)")
        self.critic = Critic(n_tracks=n_tracks, n_bars=n_bars, steps_per_bar=steps_per_bar,
                             beats_per_bar=beats_per_bar, n_pitches=n_pitches, lowest_pitch=lowest_pitch,
                             n_styles=n_styles, channels=tuple(d_channels), hidden=d_hidden, style_dim=style_dim,
                             onsets=d_onsets,
                             arrangement_rows=self.generator.arrangement_rows if d_arrangement else 0,
                             projection=d_projection)
        self.g_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        # step counters as Python ints (reading a GPU tensor each step would stall the GPU);
        # saved in checkpoints by on_save_checkpoint / on_load_checkpoint
        self.g_steps = 0
        self.d_steps = 0
        self.data_meta = data_meta
        self._base_stats_terms = stat_term_weights(stats_terms)  # a bad term or weight fails here
        self.schedule = check_schedule(schedule, data_meta, n_tracks)
        if not self.generator.texture and any("chord_bars" in terms for terms in
                                              [self._base_stats_terms, *(p.get("stats_terms", {}) for p in self.schedule)]):
            raise ValueError("stats_terms: chord_bars needs texture tracks (model.texture)")
        # written to the exported card
        check_track_taus(release, self.meta()["tracks"], "model.release")
        one_pitch = {*self._base_monophonic, *(i for p in self.schedule for i in p.get("monophonic", ()))}
        check_legato(legato, self.meta()["tracks"], one_pitch, "model.legato")
        self._phase = -1  # index of the schedule phase in force (-1: the base settings)
        self.apply_schedule()  # a phase from step 0; every later change of g_steps applies it again

    # ----------------------------------------------------------------- helpers
    def meta(self) -> dict:
        """Dataset meta for export (falls back to generic names when trained without one)."""
        if self.data_meta:
            return self.data_meta
        h = self.hparams
        return {"tracks": [f"track{i}" for i in range(h.n_tracks)], "programs": [0] * h.n_tracks,
                "is_drum": [False] * h.n_tracks, "n_bars": h.n_bars, "styles": [],
                "grid": {"steps_per_beat": h.steps_per_bar // h.beats_per_bar, "beats_per_bar": h.beats_per_bar,
                         "lowest_pitch": h.lowest_pitch, "n_pitches": h.n_pitches}}

    def settings(self) -> dict:
        """The loss and monophony settings in force at the current generator step."""
        h = self.hparams
        out = {k: h[k] for k in SCHEDULE_KEYS}
        out["monophonic"] = self._base_monophonic
        out["stats_terms"] = self._base_stats_terms  # term -> weight, as check_schedule leaves the phases'
        for phase in self.schedule[:self._phase + 1]:
            out.update({k: v for k, v in phase.items() if k != "from_step"})
        return out

    def apply_schedule(self) -> None:
        """Enter the schedule phase of the current generator step (monophony goes to both generators)."""
        phase = sum(1 for p in self.schedule if self.g_steps >= p["from_step"]) - 1
        if phase == self._phase:
            return
        self._phase = phase
        s = self.settings()
        for g in (self.generator, self.g_ema):
            g.set_monophonic(s["monophonic"])
            g.monophonic_straight_through = bool(s["monophonic_straight_through"])
        if phase >= 0 and self._trainer is not None:
            self.print(f"generator step {self.g_steps:,}: schedule phase {phase + 1} of {len(self.schedule)} "
                       f"({ {k: v for k, v in self.schedule[phase].items() if k != 'from_step'} })")

    def _conditions(self, batch: dict[str, torch.Tensor], train: bool) -> dict[str, torch.Tensor]:
        real = batch["roll"]
        n, dev = real.shape[0], real.device
        chords, has, style = batch["chords"], batch["has_chords"].bool(), batch["style"].long()
        cond_track = torch.full((n,), -1, dtype=torch.long, device=dev)
        if train:
            h = self.hparams
            has = has & (torch.rand(n, device=dev) >= h.p_drop_chords)
            style = torch.where(torch.rand(n, device=dev) < h.p_drop_style, torch.full_like(style, -1), style)
            if h.p_cond_track > 0 and h.n_tracks > 1 and h.track_cond_dim > 0:
                pick = torch.randint(0, h.n_tracks, (n,), device=dev)
                cond_track = torch.where(torch.rand(n, device=dev) < h.p_cond_track, pick, cond_track)
        cond_roll = real[torch.arange(n, device=dev), cond_track.clamp(min=0)]  # [N, B, S, P]
        return {"chords": chords, "has_chords": has, "style": style, "cond_track": cond_track,
                "cond_roll": cond_roll}

    def setup(self, stage: str) -> None:
        # runs before Lightning restores a --ckpt_path, which then replaces these weights
        if stage == "fit" and self.hparams.init_from and self.trainer.ckpt_path is None:
            self.load_training_weights(self.hparams.init_from)
        if stage == "fit" and self.hparams.arrangement:
            self._training_phrases()  # fail before any training when they are missing

    def _training_phrases(self):
        dm = getattr(self.trainer, "datamodule", None)
        train = getattr(dm, "datasets", {}).get("train") if dm is not None else None
        if train is None:
            raise ValueError("model.arrangement needs the data module's training phrases")
        return train

    def on_fit_start(self) -> None:
        # after a --ckpt_path restore: the chain is always the one of this run's training phrases
        if self.hparams.arrangement:
            train = self._training_phrases()
            self.fit_arrangement(train.rolls, train.chords, train.has_chords)

    def fit_arrangement(self, rolls: torch.Tensor, chords: torch.Tensor, has_chords: torch.Tensor) -> None:
        """Count both generators' arrangement chain on training phrases (rolls [N, T, B, S, P],
        chords [N, B, K, 12], has_chords [N]); ValueError when they do not fit the model."""
        activity = self.generator.arrangement_from_roll(torch.as_tensor(rolls))  # [N, rows, B]
        for g in (self.generator, self.g_ema):
            g.fit_arrangement_prior(activity, torch.as_tensor(chords), torch.as_tensor(has_chords))

    def load_training_weights(self, path: str | Path) -> None:
        """Copy generator, EMA and critic weights and the step counters from a training checkpoint.

        Only the parts a run may add or drop (``OPTIONAL_PARTS``: bar gate, arrangement) may be
        in one and not the other (added ones keep their initialisation), a critic with onset
        inputs (``d_onsets``) may start from one without them (zero weights for the new inputs,
        :func:`symbolic.modules.widen_critic_for_onsets`), and a generator with texture rows
        (``texture``) from one without them (zero weights for the new rows,
        :func:`symbolic.modules.widen_arrangement_weight`; the chain is counted again); anything
        else that differs raises :class:`UserError`.
        """
        from pipeline.errors import UserError

        ckpt = read_training_checkpoint(path, "model.init_from")
        state = upgrade_arrangement_state(ckpt["state_dict"])
        own = self.state_dict()
        optional = lambda k: any(part in k for part in OPTIONAL_PARTS)  # noqa: E731
        state = {k: v for k, v in state.items() if k in own or not optional(k)}  # parts this run drops
        key, d = "critic.pitch.weight", self.critic
        if d.onsets and key in state and state[key].shape[1] == d.p_fine * (d.n_tracks + 1):
            # a critic trained without onset inputs: zero weights for them, same scores
            state[key] = widen_critic_for_onsets(state[key], d.n_tracks, d.p_fine)
        for k in [k for k in state if k in own and state[k].shape != own[k].shape]:
            if k.endswith((".arrange_init", ".arrange_trans")):
                state[k] = own[k]  # the chain (another number of rows): counted again at fit start
            elif k.endswith((".arrange_in.weight", ".arrange_bias")) and can_widen_arrangement(
                    tuple(state[k].shape), tuple(own[k].shape)):
                state[k] = widen_arrangement_weight(state[k], own[k].shape)  # zero weights for new rows
        missing = [k for k in own if k not in state]
        bad = [k for k in missing if not optional(k)] + [k for k in state if k not in own]
        bad += [k for k in state if k in own and state[k].shape != own[k].shape]
        if bad:
            raise UserError(f"{path}: model.init_from does not match this model's configuration "
                            f"(differs at {bad[:3]}); use the same sizes as the run that wrote it")
        for k in missing:
            state[k] = own[k]
        self.load_state_dict(state)
        steps = ckpt.get("musegan_steps", {})
        self.g_steps, self.d_steps = int(steps.get("g_steps", 0)), int(steps.get("d_steps", 0))
        self.apply_schedule()

    # ----------------------------------------------------------------- training
    def _latents(self, real: torch.Tensor, arrangement: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Fresh latents for a batch, with ``arrangement`` (the real phrases' [N, rows, B], from
        :meth:`symbolic.modules.Generator.arrangement_from_roll`) when the model has arrangement conditioning."""
        z = self.generator.sample_latents(real.shape[0], device=real.device, arrangement=False)
        if arrangement is not None:
            z[ARRANGEMENT_KEY] = arrangement
        return z

    def configure_optimizers(self):
        h = self.hparams
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=h.lr, betas=tuple(h.betas))
        opt_d = torch.optim.Adam(self.critic.parameters(), lr=h.lr, betas=tuple(h.betas))
        return [opt_g, opt_d]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        h = self.hparams
        opt_g, opt_d = self.optimizers()
        real = batch["roll"]
        n = real.shape[0]
        c = self._conditions(batch, train=True)
        dcond = {k: c[k] for k in ("chords", "has_chords", "style", "cond_track")}
        arrangement = self.generator.arrangement_from_roll(real) if h.arrangement else None   # [N, rows, B]
        if h.d_arrangement:  # the critic sees the bars' arrangement, the real phrase's for both
            dcond["arrangement"] = arrangement.to(real.dtype)
        gcond = {k: c[k] for k in ("chords", "has_chords", "style", "cond_roll", "cond_track")}

        # critic step
        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            fake = self.generator(self._latents(real, arrangement), **gcond)
        both = torch.cat([real, fake])
        scores = self.critic(both, **{k: torch.cat([v, v]) for k, v in dcond.items()})
        d_real, d_fake = scores[:n].mean(), scores[n:].mean()
        gp = gradient_penalty(self.critic, real, fake, **dcond)
        d_loss = d_fake - d_real + h.gp_lambda * gp
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.d_steps += 1
        self.log_dict({"loss/d": d_loss.detach(), "loss/gp": gp.detach(),
                       "loss/wasserstein": (d_real - d_fake).detach()})

        if self.d_steps % h.n_critic != 0:
            return
        # generator step
        self.toggle_optimizer(opt_g)
        fake = self.generator(self._latents(real, arrangement), **gcond)
        g_loss = -self.critic(fake, **dcond).mean()
        s = self.settings()
        if s["density_weight"]:
            density = density_matching_loss(fake, real)
            g_loss = g_loss + s["density_weight"] * density
            self.log("loss/density", density.detach())
        if s["stats_weight"]:
            pitched = [not d for d in self.meta().get("is_drum", [False] * h.n_tracks)]
            weights = s["stats_terms"]  # term -> weight (settings)
            # the bars the real phrase, hence the generated one, plays as chords
            chord_bars = self.generator.texture_bars(arrangement) if "chord_bars" in weights else None
            stats = statistics_matching_loss(fake, real, h.lowest_pitch, pitched, tuple(weights),
                                             h.beats_per_bar, chord_bars,
                                             groups=c["style"] if s["stats_by_style"] else None)
            g_loss = g_loss + s["stats_weight"] * sum(weights[k] * v for k, v in stats.items())
            self.log_dict({f"loss/stats_{k}": v.detach() for k, v in stats.items()})
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.g_steps += 1
        self.apply_schedule()  # so a checkpoint saved now holds this step's phase
        g = self.g_steps
        ema_update(self.g_ema, self.generator, min(h.ema_decay, (1 + g) / (10 + g)))
        self.log("loss/g", g_loss.detach())
        self.log("train/g_steps", float(g))
        if h.image_every and g % h.image_every == 0:
            self._log_image(batch)

    def _log_image(self, batch: dict[str, torch.Tensor]) -> None:
        if not self.trainer.is_global_zero or self.logger is None:
            return
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        gen = torch.Generator().manual_seed(0)
        self.g_ema.eval()
        with torch.no_grad():
            z = self.g_ema.sample_latents(1, generator=gen, device=batch["roll"].device, chords=batch["chords"][:1],
                                          has_chords=batch["has_chords"][:1])
            roll = self.g_ema(z, batch["chords"][:1], batch["has_chords"][:1].bool(), batch["style"][:1].long())
        img = pianoroll_image(roll[0], self.meta().get("tracks"))
        experiment.add_image("samples/ema", img, self.g_steps)

    # ----------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Generated (EMA, thresholded at 0.5) vs real metrics on the batch's chords and styles."""
        real = batch["roll"]
        n = real.shape[0]
        c = self._conditions(batch, train=False)
        self.g_ema.eval()
        gen = torch.Generator().manual_seed(1000 + batch_idx)
        z = self.g_ema.sample_latents(n, generator=gen, device=real.device, chords=c["chords"],
                                      has_chords=c["has_chords"])
        fake = self.g_ema(z, c["chords"], c["has_chords"], c["style"]) > 0.5
        lp = self.hparams.lowest_pitch
        mf = roll_metrics(fake, c["chords"], c["has_chords"], lp, self.hparams.qn_min_steps)
        mr = roll_metrics(real, c["chords"], c["has_chords"], lp, self.hparams.qn_min_steps)
        logs = {f"val/{k}_fake": v for k, v in mf.items()}
        logs.update({f"val/{k}_real": v for k, v in mr.items()})
        for t in self._drum_tracks():   # which drums play, which the metrics above cannot see
            hits = torch.stack([(real[:, t] > 0.5).sum(dim=(0, 1, 2)), fake[:, t].sum(dim=(0, 1, 2))]).double()
            self._kit_hits[t] = self._kit_hits.get(t, 0) + hits
        self.log_dict(logs, sync_dist=True, batch_size=n)

    def _drum_tracks(self) -> list[int]:
        return [t for t, d in enumerate(self.meta().get("is_drum") or []) if d]

    def on_validation_epoch_start(self) -> None:
        self._kit_hits: dict[int, torch.Tensor] = {}

    def on_validation_epoch_end(self) -> None:
        """``val/kit_distance_<track>`` of each drum track: the kit distance
        (:func:`symbolic.metrics.kit_distance`) of the epoch's generated and real hits, counted
        over every validation batch and summed over the processes (every rank logs the same
        value; none when one side has no hit)."""
        trainer = self._trainer
        for t in self._drum_tracks():
            hits = getattr(self, "_kit_hits", {}).get(t)
            if hits is None:   # a rank without validation batches still takes part in the sum
                hits = torch.zeros(2, self.hparams.n_pitches, dtype=torch.float64, device=self.device)
            if trainer is not None:
                hits = trainer.strategy.reduce(hits, reduce_op="sum")
            d = share_distance(*hits.cpu().numpy())
            if not math.isnan(d):
                self.log(f"val/kit_distance_{self.meta()['tracks'][t]}", d)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["musegan_steps"] = {"g_steps": self.g_steps, "d_steps": self.d_steps}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        steps = checkpoint.get("musegan_steps", {})
        self.g_steps = int(steps.get("g_steps", 0))
        self.d_steps = int(steps.get("d_steps", 0))
        self.apply_schedule()  # a checkpoint exported or resumed in a later phase generates as in that phase

    def on_train_start(self) -> None:
        if self.trainer.is_global_zero:
            self.print(f"generator {count_parameters(self.generator):,} parameters, "
                       f"critic {count_parameters(self.critic):,} parameters")

    def train(self, mode: bool = True):
        super().train(mode)
        self.g_ema.eval()  # the EMA generator always uses its (copied) running statistics
        return self


# --------------------------------------------------------------------------- export callback
class ExportComposer(L.Callback):
    """Export the EMA generator to ``<out_dir>/symbolic_<name>.safetensors`` + ``.json``
    at every checkpoint and at the end of fit (global rank zero only).

    At the end of fit it also brings the run's ``last.ckpt`` (of a ``ModelCheckpoint`` with
    ``save_last``) up to the final step: Lightning writes ``last.ckpt`` only with the periodic
    checkpoints, so a run stopped by ``max_time`` (or a ``max_steps`` between two of them) would
    resume, and export from ``last.ckpt``, up to ``every_n_train_steps`` behind.
    """

    def __init__(self, name: str = "debug", out_dir: str = "data/pretrained") -> None:
        super().__init__()
        self.name, self.out_dir = name, out_dir
        self._velocity: dict | None = None
        self._velocity_read = False

    def velocity(self, trainer: L.Trainer, pl_module: MuseGANModule) -> dict | None:
        """The card's ``decode.velocity`` from the training cache's ``velocity.npz`` (None when the
        data module has no cache folder or the cache predates the velocity counts)."""
        return self.read_velocity(getattr(trainer.datamodule, "data_dir", None), pl_module.meta())

    def read_velocity(self, data_dir: str | Path | None, meta: dict) -> dict | None:
        """:meth:`velocity` from the cache folder ``data_dir`` and the model's ``meta``, read once
        (``train symbolic`` reads it before Lightning starts)."""
        if not self._velocity_read:
            from symbolic.velocity import FILE

            if data_dir is not None and (Path(data_dir) / FILE).is_file():
                from symbolic.velocity import table_from_cache

                self._velocity = table_from_cache(data_dir, meta, "data.data_dir")
            self._velocity_read = True
        return self._velocity

    def on_fit_start(self, trainer, pl_module) -> None:
        # read before the first step, on every rank: a bad velocity.npz stops the run now, on all of
        # them, not at the first checkpoint on rank zero alone (the others would wait at its barrier)
        self.velocity(trainer, pl_module)

    def export(self, trainer: L.Trainer, pl_module: MuseGANModule) -> tuple[Path, Path] | None:
        if not trainer.is_global_zero:
            return None
        return export_module(pl_module, self.out_dir, self.name, global_step=int(trainer.global_step),
                             velocity=self.velocity(trainer, pl_module))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.export(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.save_last is True and ckpt.dirpath:  # not "link": that is a periodic one
            last = ckpt.last_model_path or str(Path(ckpt.dirpath) / f"{ckpt.CHECKPOINT_NAME_LAST}{ckpt.FILE_EXTENSION}")
            # a full checkpoint (to resume), on every rank (DDP); exports through on_save_checkpoint
            trainer.save_checkpoint(last, weights_only=False)
        else:
            self.export(trainer, pl_module)


def export_module(module: MuseGANModule, out_dir: str | Path, name: str, global_step: int,
                  raw: bool = False, velocity: dict | None = None) -> tuple[Path, Path]:
    """Export a module's EMA generator (or, with ``raw``, the trained generator itself); the card's
    ``training`` holds the hyper-parameters, ``global_step`` and which generator (``exported``)."""
    extra = {k: (list(v) if isinstance(v, tuple) else v) for k, v in module.hparams.items()
             if k != "data_meta" and not k.startswith("_")}
    extra.update(global_step=int(global_step), exported="generator" if raw else "ema")
    generator = module.generator if raw else module.g_ema
    return export_generator(generator, out_dir, name, module.meta(), training_steps=int(module.g_steps), extra=extra,
                            release=module.hparams.get("release"), legato=module.hparams.get("legato"),
                            velocity=velocity)


def read_training_checkpoint(path: str | Path, role: str = "",
                             required: tuple[str, ...] = ("state_dict",)) -> dict:
    """Read a Lightning checkpoint of this module safely (``torch.load(weights_only=True)``).

    Args:
        path: the ``.ckpt`` file; role: how messages name it (e.g. "model.init_from");
        required: top-level entries it must hold.
    Raises:
        UserError when it is missing, unreadable or lacks a required entry.
    """
    from pipeline.errors import UserError

    path, named = Path(path), f"{role} " if role else ""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a {named}checkpoint file (e.g. .../checkpoints/last.ckpt)")
    if not path.is_file():
        raise UserError(f"{path}: {named}checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in required if k not in ckpt]
        if missing:
            raise KeyError(f"no {missing}")
    except Exception as exc:  # not a Lightning checkpoint, or not loadable safely
        # torch's own text (several sentences of advice on weights_only) is not for this user:
        # its first sentence says what went wrong
        why = str(exc).strip().split("\n")[0].split(". ")[0][:160]
        raise UserError(f"{path}: cannot read {named}as a training checkpoint ({type(exc).__name__}: {why})") from None
    from pipeline.training import other_model

    other = other_model(ckpt["state_dict"], "g_ema") if isinstance(ckpt.get("state_dict"), dict) else None
    if other:
        where = f"{role}: " if role else ""
        raise UserError(f"{path}: {where}a checkpoint of another model, not the composer's ({other}); give one "
                        f"saved by 'musegansynth train symbolic'")
    return ckpt


def steps_for_generator_steps(g_steps: int, n_critic: int = 5) -> int:
    """Lightning ``max_steps`` that gives ``g_steps`` generator steps (global steps count both nets)."""
    return int(math.ceil(g_steps * (n_critic + 1)))
