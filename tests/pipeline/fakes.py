"""Fake generation objects that follow docs/CONTRACTS.md exactly, for pipeline tests.

:class:`FakeComposer` stands for ``symbolic.generate.Composer`` and :class:`FakeTimbreGenerator`
for ``audio.generate.TimbreGenerator``: same attributes, same method signatures, same shapes
and dtypes, deterministic outputs that depend on their inputs (latents, chords, style, pitch,
program, z) in simple, checkable ways. No learning, no weights.
"""

from __future__ import annotations

import math

import torch

from audio.spectral import SpecConfig, SpecTransform
from symbolic.roll import Grid


class FakeComposer:
    """A "composer" that writes chord tones chosen by its latents.

    Latents: ``{"shared": [N, 8], "private": [N, tracks, 8]}``. Track kinds by name: "drums"
    (kick on beats 1 and 3, snare on 2 and 4, hats on eighths whose density follows the latent);
    "melody" (eighth notes on chord tones, octave 5); anything else (sustained chord tones, one
    note a beat, octave 4). Without chords the chord is C major. Probabilities are 0.9 on / 0.1 off.
    """

    def __init__(self, track_names=("melody", "bridge", "piano"), *, is_drum=None, programs=None,
                 grid: Grid | None = None, n_bars: int = 4, styles=("pop", "rock"), device: str = "cpu") -> None:
        self.track_names = list(track_names)
        self.is_drum = list(is_drum) if is_drum is not None else [n == "drums" for n in self.track_names]
        self.programs = list(programs) if programs is not None else [0] * len(self.track_names)
        g = grid or Grid()
        # the real Composer keeps its grid as a dict of Grid's fields
        self.grid = {"steps_per_beat": g.steps_per_beat, "beats_per_bar": g.beats_per_bar,
                     "lowest_pitch": g.lowest_pitch, "n_pitches": g.n_pitches}
        self._grid = g
        self.n_bars = n_bars
        self.styles = list(styles)
        self.device = torch.device(device)
        self.decode_calls: list[dict] = []
        self.accompany_calls: list[dict] = []
        self.accompany_chords: list = []  # the chords each accompany call got (None: none)

    def sample_latents(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"shared": torch.randn(n, 8, generator=generator),
                "private": torch.randn(n, len(self.track_names), 8, generator=generator)}

    @staticmethod
    def interpolate(latents_a, latents_b, t: float):
        return {k: (1 - t) * latents_a[k] + t * latents_b[k] for k in latents_a}

    def decode(self, latents, chords=None, style=None) -> torch.Tensor:
        n = latents["shared"].shape[0]
        g = self._grid
        T, B, S, P = len(self.track_names), self.n_bars, g.steps_per_bar, g.n_pitches
        self.decode_calls.append({"n": n, "chords": chords, "style": style})
        if chords is not None and tuple(chords.shape) != (n, B, g.beats_per_bar, 12):
            raise ValueError(f"chords should have shape [{n}, {B}, {g.beats_per_bar}, 12], got {tuple(chords.shape)}")
        out = torch.full((n, T, B, S, P), 0.1)
        for i in range(n):
            sh = latents["shared"][i]
            for t, name in enumerate(self.track_names):
                pr = latents["private"][i, t]
                for b in range(B):
                    code = float(sh[b % 8] + pr[(b * 3) % 8])
                    for beat in range(g.beats_per_bar):
                        if chords is not None and float(chords[i, b, beat].sum()) > 0:
                            pcs = [int(p) for p in torch.nonzero(chords[i, b, beat]).flatten()]
                        else:
                            pcs = [0, 4, 7]
                        s0 = beat * g.steps_per_beat
                        if self.is_drum[t]:
                            kick_or_snare = 36 if beat % 2 == 0 else 38
                            out[i, t, b, s0, kick_or_snare - g.lowest_pitch] = 0.9
                            hats = 2 if code > 0 else 1
                            for k in range(hats):
                                out[i, t, b, s0 + k * g.steps_per_beat // hats, 42 - g.lowest_pitch] = 0.9
                        elif name == "melody":
                            for half in range(2):
                                idx = int(abs(code) * 7 + beat * 2 + half) % len(pcs)
                                pitch = 72 + pcs[idx]
                                a = s0 + half * g.steps_per_beat // 2
                                out[i, t, b, a:a + g.steps_per_beat // 2 - 1, pitch - g.lowest_pitch] = 0.9
                        else:
                            pitch = 60 + pcs[int(abs(code) * 5 + t) % len(pcs)]
                            out[i, t, b, s0:s0 + g.steps_per_beat, pitch - g.lowest_pitch] = 0.9
        return out

    def compose(self, n_phrases: int, seed: int, chords=None, style=None) -> torch.Tensor:
        """``n_phrases`` phrases from latents of ``seed``, joined in time: [T, n_phrases * n_bars, S, P] in {0, 1}."""
        lat = self.sample_latents(n_phrases, torch.Generator().manual_seed(int(seed)))
        st = None if style is None else torch.full((n_phrases,), int(style), dtype=torch.long)
        out = (self.decode(lat, chords=chords, style=st) > 0.5).float()
        n, t, b, s, p = out.shape
        return out.permute(1, 0, 2, 3, 4).reshape(t, n * b, s, p)

    def accompany(self, given_roll, track: int | str, seed: int, chords=None, style=None) -> torch.Tensor:
        """Given one track's roll ``[bars_total, S, P]`` return all tracks ``[T, bars_total, S, P]`` in {0, 1}.

        The given track is copied (binarised); the others are decoded from latents of ``seed``.
        """
        ti = self.track_names.index(track) if isinstance(track, str) else int(track)
        g = (torch.as_tensor(given_roll) > 0).float()
        bars = g.shape[0]
        n = -(-bars // self.n_bars)
        lat = self.sample_latents(n, torch.Generator().manual_seed(int(seed)))
        c = None
        if chords is not None:  # [bars, K, 12] -> phrases, zero-padded
            c = torch.as_tensor(chords, dtype=torch.float32)
            c = torch.cat([c, c.new_zeros(n * self.n_bars - c.shape[0], *c.shape[1:])]).reshape(n, self.n_bars,
                                                                                                 *c.shape[1:])
        out = (self.decode(lat, chords=c, style=style) > 0.5).float()
        out = out.permute(1, 0, 2, 3, 4).reshape(len(self.track_names), n * self.n_bars, *g.shape[1:])[:, :bars]
        out[ti] = g
        self.accompany_calls.append({"track": ti, "seed": seed, "bars": bars})
        self.accompany_chords.append(None if chords is None else torch.as_tensor(chords).clone())
        return out


class FakeTimbreGenerator:
    """A "timbre model" that plays harmonic tones (pitched programs) or noise bursts (drums).

    ``generate_spec`` synthesises, for each row, a note of ``clip_s`` seconds: a sum of
    harmonics of the pitch's frequency whose brightness depends on the program and on z, held
    until 75 % of the clip then decaying; drums (program 128) are a decaying noise burst seeded
    by the key. It returns the transform's [B, 2, clip_frames, bins] spectrogram of that wave.
    """

    def __init__(self, *, sample_rate: int = 16000, latent_dim: int = 16, n_fft: int = 512, hop: int = 128,
                 clip_s: float = 1.0, device: str = "cpu") -> None:
        self.sample_rate = sample_rate
        self.latent_dim = latent_dim
        self.transform = SpecTransform(SpecConfig(sample_rate=sample_rate, n_fft=n_fft, hop=hop))
        self.clip_samples = int(clip_s * sample_rate)
        self.clip_frames = self.transform.frames_for(self.clip_samples)
        self.device = torch.device(device)
        self.pitch_range = (24, 96)
        self.calls: list[int] = []  # batch size of each generate_spec call

    def _wave(self, pitch: int, program: int, velocity: int, z: torch.Tensor) -> torch.Tensor:
        n = self.transform.samples_for(self.clip_frames)
        t = torch.arange(n, dtype=torch.float64) / self.sample_rate
        env = torch.clamp(t / 0.01, max=1.0) * torch.where(
            t < 0.75 * n / self.sample_rate, torch.ones_like(t), torch.exp(-(t - 0.75 * n / self.sample_rate) * 20))
        if program == 128:
            g = torch.Generator().manual_seed(int(pitch))
            wave = torch.randn(n, generator=g, dtype=torch.float64) * torch.exp(-t * 8.0)
        else:
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            bright = 1.0 + (program % 8) / 4 + float(torch.tanh(z[0]))
            wave = torch.zeros(n, dtype=torch.float64)
            for h in range(1, 6):
                if h * f0 < self.sample_rate / 2:
                    wave += math.exp(-(h - 1) / bright) * torch.sin(2 * math.pi * h * f0 * t)
            wave = wave * env
        return (0.3 * wave / max(1e-9, float(wave.abs().max()))).float()

    def generate_spec(self, pitch: torch.Tensor, program: torch.Tensor, velocity: torch.Tensor,
                      z: torch.Tensor) -> torch.Tensor:
        B = pitch.shape[0]
        if not (program.shape[0] == velocity.shape[0] == z.shape[0] == B) or z.shape[1] != self.latent_dim:
            raise ValueError("pitch, program, velocity [B] and z [B, latent_dim] must agree")
        self.calls.append(int(B))
        waves = torch.stack([self._wave(int(p), int(g), int(v), zz.cpu())
                             for p, g, v, zz in zip(pitch, program, velocity, z)])
        return self.transform.wave_to_spec(waves, frames=self.clip_frames).to(z.device)

    def generate(self, pitch, program, velocity, z) -> torch.Tensor:
        spec = self.generate_spec(pitch, program, velocity, z)
        return self.transform.spec_to_wave(spec, self.transform.samples_for(self.clip_frames))

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


def fake_drum_composer(**kw) -> FakeComposer:
    """A one-track drums composer (as ``symbolic_drums``)."""
    return FakeComposer(("drums",), **kw)


def make_models(device: str = "cpu"):
    """(composer, drum composer, timbre generator) fakes, as :func:`pipeline.generate.load_models` returns."""
    return FakeComposer(device=device), fake_drum_composer(device=device), FakeTimbreGenerator(device=device)


#: A small song config (10 bars at 120 bpm, three tracks with drums) for pipeline tests.
SMALL_SONG = {
    "title": "Small Song",
    "seed": 3,
    "tempo": 120,
    "time_signature": "4/4",
    "sample_rate": 16000,
    "style": "rock",
    "tracks": [
        {"name": "lead", "source": "melody", "instrument": "Flute", "timbre_seed": 1, "volume_db": -1, "pan": -0.2},
        {"name": "keys", "source": "piano", "instrument": "keyboard", "timbre_seed": 2, "volume_db": -4},
        {"name": "drums", "source": "drums", "timbre_seed": 3, "volume_db": -6, "pan": 0.1},
    ],
    "sections": [
        {"name": "verse", "bars": 4, "chords": ["C", "Am", "F", "G"]},
        {"name": "chorus", "bars": 2, "chords": ["F", "G"], "morph": 0.5},
        {"name": "verse", "bars": 4, "chords": ["C", "Am", "F", "G"], "variation": 0.3},
    ],
}


__all__ = ["SMALL_SONG", "FakeComposer", "FakeTimbreGenerator", "fake_drum_composer", "make_models"]
