"""Helpers that write small MIDI files with pretty_midi for the symbolic tests."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")


def write_midi_file(path, tracks, *, tempo=120.0, time_signature=(4, 4), tempo_changes=None, resolution=480,
                    time_signatures=()):
    """Write a MIDI file.

    tracks: list of (name, program, is_drum, notes) with notes (pitch, start_beat, end_beat, velocity);
    beats are quarter notes at ``tempo`` (or through ``tempo_changes``: list of (beat, qpm), first at 0);
    ``time_signatures``: more (numerator, denominator, beat) changes after the first.
    Returns the path.
    """
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=tempo)
    if tempo_changes:
        # pretty_midi has no public tempo writer: set the tick scales and let it write them
        ticks_per_beat = resolution
        scales = [(int(b * ticks_per_beat), 60.0 / (q * resolution)) for b, q in tempo_changes]
        pm._tick_scales = scales
        pm._update_tick_to_time(resolution * 1000)
    if time_signature:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(*time_signature, 0.0))
    for num, den, beat in time_signatures:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, pm.tick_to_time(int(beat * resolution))))
    for name, program, is_drum, notes in tracks:
        inst = pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)
        for pitch, sb, eb, vel in notes:
            inst.notes.append(pretty_midi.Note(velocity=vel, pitch=pitch,
                                               start=pm.tick_to_time(int(round(sb * resolution))),
                                               end=pm.tick_to_time(int(round(eb * resolution)))))
        pm.instruments.append(inst)
    pm.write(str(path))
    return Path(path)


@pytest.fixture
def make_midi(tmp_path):
    """``make_midi(name, tracks, **kw)`` writes ``tmp_path/name`` (see :func:`write_midi_file`)."""
    def _make(name, tracks, **kw):
        return write_midi_file(tmp_path / name, tracks, **kw)
    return _make


@pytest.fixture
def midi_writer():
    """:func:`write_midi_file` itself (any path)."""
    return write_midi_file


@pytest.fixture
def shared_data():
    """Path of ../shared/data; skips when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


TINY_MODULE = dict(n_tracks=3, n_bars=4, steps_per_bar=16, n_pitches=84, n_styles=2, z_dim=4, g_trunk_channels=(8, 4),
                   g_branch_channels=4, d_channels=(4, 8), d_hidden=8, n_critic=1, image_every=0)
"""A MuseGANModule small enough to train a few steps in a test (on ``write_fake_cache`` data)."""


def fit_tiny(root, steps: int, logger=False, **module_kw):
    """Train a tiny MuseGANModule for ``steps`` global steps on a fake cache under ``root``.

    Returns (module, trainer); ``module_kw`` are extra MuseGANModule arguments.
    """
    import lightning as L
    import torch

    from symbolic.datamodule import PhraseDataModule, write_fake_cache
    from symbolic.lightning import MuseGANModule

    root = Path(root)
    if not (root / "data" / "meta.json").is_file():
        write_fake_cache(root / "data", n_train=8, n_valid=4, n_test=2)
    dm = PhraseDataModule(data_dir=str(root / "data"), batch_size=4, val_batch_size=4)
    torch.manual_seed(0)
    model = MuseGANModule(**TINY_MODULE, data_meta=dm.meta, **module_kw)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=logger, log_every_n_steps=1,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=str(root))
    trainer.fit(model, dm)
    return model, trainer


@pytest.fixture(scope="session")
def tiny_fit():
    """:func:`fit_tiny`: train a tiny MuseGANModule a few steps on fake data."""
    return fit_tiny


@pytest.fixture
def tiny_module_kw():
    """A copy of :data:`TINY_MODULE` (MuseGANModule keyword arguments)."""
    return dict(TINY_MODULE)


@pytest.fixture
def grown_from_checkpoint(tmp_path, tiny_fit, tiny_module_kw):
    """``grow(**extra)``: a tiny module trained 2 steps and checkpointed, then a new module with
    ``extra`` arguments started from that checkpoint (``load_training_weights``, as ``init_from``
    does). Returns (trained, grown, rolls [3, T, B, S, P] of random {0, 1} phrases, checkpoint)."""
    import torch

    from symbolic.lightning import MuseGANModule

    def grow(**extra):
        first, trainer = tiny_fit(tmp_path, 2)
        ckpt = tmp_path / "plain.ckpt"
        trainer.save_checkpoint(ckpt)
        grown = MuseGANModule(**tiny_module_kw, data_meta=first.data_meta, **extra)
        grown.load_training_weights(ckpt)
        c = first.critic
        torch.manual_seed(1)
        rolls = (torch.rand(3, c.n_tracks, c.n_bars, c.steps_per_bar, c.n_pitches) > 0.8).float()
        return first, grown, rolls, ckpt
    return grow
