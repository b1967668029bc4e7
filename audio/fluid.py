"""FluidSynth rendering: single notes (for NSynth-format note sets) and whole MIDI files.

Notes are rendered many at a time: one MIDI file per worker holds a batch of notes, each in its
own time slot, and one ``fluidsynth -F`` run renders the whole file; the float32 output is then
cut into notes at exact sample positions. Reverb and chorus are off for notes, so every note is
dry and independent of its neighbours (an "All Sound Off" message ends each slot).

Timing facts this relies on (FluidSynth 2.x fast render): MIDI events take effect at the start
of a 64-sample block, one block after their time, and the MIDI player keeps time in whole
milliseconds. Slots therefore start at times that are whole milliseconds *and* whole blocks, and
a note's audio starts :data:`FLUID_LATENCY` samples after its slot.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import UserError
from pipeline.fileio import atomic_path

#: Where Debian/Ubuntu, Fedora, Arch and Homebrew put General MIDI SoundFonts.
SOUNDFONT_DIRS = (
    "/usr/share/sounds/sf2",
    "/usr/share/soundfonts",
    "/usr/share/sounds/sf3",
    "/usr/local/share/soundfonts",
    "/usr/local/share/sounds/sf2",
    "/opt/homebrew/share/soundfonts",
    "~/.local/share/soundfonts",
)
#: Short SoundFont names -> (file names to look for, package that installs them).
SOUNDFONTS = {
    "fluidr3_gm": (("FluidR3_GM.sf2", "FluidR3_GM.sf3", "default-GM.sf2"), "fluid-soundfont-gm"),
    "timgm6mb": (("TimGM6mb.sf2",), "timgm6mb-soundfont"),
}
DEFAULT_SOUNDFONT = "fluidr3_gm"

#: FluidSynth's audio block (FLUID_BUFSIZE), in samples: events take effect on block boundaries.
FLUID_BLOCK = 64
#: Samples between a note-on's time and the first sample of its sound, in fast rendering.
FLUID_LATENCY = FLUID_BLOCK
#: Master gain for single notes: the loudest GM notes at velocity 127 stay below full scale.
NOTE_GAIN = 0.8
#: Silence after a note's kept audio before the next slot: the All Sound Off message sits here.
SLOT_GAP_S = 0.05
#: Silence before the first slot of a run.
LEAD_IN_S = 0.1
#: MIDI file timing: 1000 ticks a beat at 60 bpm, so one tick is one millisecond.
_TICKS_PER_BEAT = 1000
_TEMPO_US = 1_000_000
#: Notes per fluidsynth run (amortises loading the SoundFont).
_DEFAULT_BATCH = 256
#: Output rates FluidSynth renders (its ``synth.sample-rate`` bounds), in Hz, inclusive.
SAMPLE_RATE_RANGE = (8000, 96000)


def check_sample_rate(rate: int, key: str = "--sample-rate") -> int:
    """``rate`` as an int when FluidSynth can render at it (:data:`SAMPLE_RATE_RANGE`); UserError naming
    ``key`` otherwise, before any fluidsynth run (which would fail with a temp-file message)."""
    lo, hi = SAMPLE_RATE_RANGE
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not lo <= int(rate) <= hi:
        raise UserError(f"{key} {rate}: out of range (FluidSynth renders at {lo} to {hi} Hz)")
    return int(rate)


@dataclass(frozen=True)
class NoteSpec:
    """One note to render.

    Attributes:
        program: GM program 0-127 (for drums, the drum kit preset: 0 = Standard kit).
        pitch: MIDI note number 0-127 (for drums, the GM percussion key, 35-81).
        velocity: MIDI velocity 1-127.
        hold_s: seconds between note-on and note-off.
        release_s: seconds kept after the note-off (the release tail).
        is_drum: play on MIDI channel 10 (the percussion channel).
    """

    program: int
    pitch: int
    velocity: int
    hold_s: float = 3.0
    release_s: float = 1.0
    is_drum: bool = False

    def n_samples(self, sample_rate: int) -> int:
        """Length of the rendered note in samples: ``round((hold_s + release_s) * sample_rate)``."""
        return int(round((self.hold_s + self.release_s) * sample_rate))

    def validate(self) -> None:
        """Raise UserError when a field is out of its MIDI range."""
        for name, value, lo, hi in (("program", self.program, 0, 127), ("pitch", self.pitch, 0, 127),
                                    ("velocity", self.velocity, 1, 127)):
            if not (isinstance(value, (int, np.integer)) and lo <= int(value) <= hi):
                raise UserError(f"note {self}: {name} must be an integer {lo}-{hi}, got {value!r}")
        if not (self.hold_s > 0 and self.release_s >= 0):
            raise UserError(f"note {self}: hold_s must be > 0 and release_s >= 0")


def fluidsynth_available() -> bool:
    """True when the ``fluidsynth`` program is on PATH."""
    return shutil.which("fluidsynth") is not None


def can_render(soundfont: str | os.PathLike | None = None) -> bool:
    """Whether FluidSynth and the SoundFont (as :func:`find_soundfont` finds it) are both here."""
    try:
        find_soundfont(soundfont)
    except UserError:
        return False
    return fluidsynth_available()


def _fluidsynth_exe() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise UserError("fluidsynth: program not found on PATH; install it with "
                        "'sudo apt-get install fluidsynth' (or your system's package manager)")
    return exe


def check_soundfont(path: str | os.PathLike) -> Path:
    """``path`` when it starts as a SoundFont does (a RIFF file of form ``sfbk``: .sf2, and .sf3
    too); UserError naming it otherwise. FluidSynth itself goes on without a SoundFont it cannot
    load, playing notes with whatever other one its settings name, so every renderer here checks
    the file first (:func:`find_soundfont` only finds it)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the SoundFont ({exc.strerror or type(exc).__name__})") from None
    if not head:
        raise UserError(f"{path}: not a SoundFont (the file is empty)")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise UserError(f"{path}: not a SoundFont (expected an .sf2/.sf3 file, which starts with a RIFF 'sfbk' header)")
    return path


def find_soundfont(name: str | os.PathLike | None = None) -> Path:
    """Find a SoundFont file.

    Args:
        name: None for FluidR3_GM (the default), a short name ("fluidr3_gm", "timgm6mb",
            case-insensitive, ".sf2" optional), or a path to an .sf2/.sf3 file.
    Returns:
        The path of an existing SoundFont file.
    Raises:
        UserError: naming the places looked in and the apt-get command that installs it.
    """
    name = DEFAULT_SOUNDFONT if name is None else name
    text = str(name)
    key = Path(text).name.lower().removesuffix(".sf2").removesuffix(".sf3")
    if os.sep in text or (os.altsep and os.altsep in text) or Path(text).expanduser().is_file():
        path = Path(text).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            raise UserError(f"{text}: is a folder, not a SoundFont file")
        raise UserError(f"{text}: SoundFont file not found")
    if key not in SOUNDFONTS:
        if text.lower().endswith((".sf2", ".sf3")):
            raise UserError(f"{text}: SoundFont file not found")
        raise UserError(f"soundfont {text!r}: unknown name; give a path to an .sf2 file or one of "
                        f"{', '.join(sorted(SOUNDFONTS))}")
    files, package = SOUNDFONTS[key]
    dirs = [Path(d).expanduser() for d in SOUNDFONT_DIRS]
    env = os.environ.get("SOUNDFONT_PATH")
    if env:
        dirs = [Path(d) for d in env.split(os.pathsep) if d] + dirs
    for d in dirs:
        for f in files:
            if (d / f).is_file():
                return d / f
    raise UserError(f"soundfont {text!r}: none of {', '.join(files)} found in {', '.join(map(str, dirs))}; "
                    f"install it with 'sudo apt-get install {package}' or pass a path to an .sf2 file")


def _slot_quantum_ms(sample_rate: int) -> int:
    """Smallest time step (ms) that is a whole number of milliseconds and of 64-sample blocks."""
    return (1000 * FLUID_BLOCK) // math.gcd(1000 * FLUID_BLOCK, sample_rate)


def _write_notes_midi(specs: Sequence[NoteSpec], path: Path, sample_rate: int) -> list[int]:
    """Write ``specs`` into one MIDI file, one note per slot.

    Returns the start sample of each slot's note audio in the rendered output.
    """
    import mido  # installed with pretty_midi

    quantum = _slot_quantum_ms(sample_rate)
    events: list[tuple[int, int, mido.Message]] = []
    # A lead-in before the first slot: the very first block of a run sounds slightly different.
    t_ms = int(math.ceil(LEAD_IN_S * 1000 / quantum)) * quantum
    for channel in (0, 9):
        events.append((0, 1, mido.Message("note_on", note=60, velocity=1, channel=channel)))
        events.append((10, 3, mido.Message("control_change", control=120, value=0, channel=channel)))
    starts = []
    for spec in specs:
        channel = 9 if spec.is_drum else 0
        hold_ms = int(round(spec.hold_s * 1000))
        keep_ms = int(math.ceil((spec.hold_s + spec.release_s) * 1000))
        off_ms = keep_ms + int(math.ceil(FLUID_LATENCY * 1000 / sample_rate)) + 1
        slot_ms = int(math.ceil((off_ms + SLOT_GAP_S * 1000) / quantum)) * quantum
        starts.append(t_ms * sample_rate // 1000 + FLUID_LATENCY)
        events.append((t_ms, 0, mido.Message("program_change", program=int(spec.program), channel=channel)))
        events.append((t_ms, 1, mido.Message("note_on", note=int(spec.pitch), velocity=int(spec.velocity),
                                             channel=channel)))
        events.append((t_ms + hold_ms, 2, mido.Message("note_off", note=int(spec.pitch), velocity=0,
                                                       channel=channel)))
        # All Sound Off: cut every tail before the next slot starts.
        events.append((t_ms + off_ms, 3, mido.Message("control_change", control=120, value=0, channel=channel)))
        t_ms += slot_ms
    events.sort(key=lambda e: (e[0], e[1]))
    midi = mido.MidiFile(ticks_per_beat=_TICKS_PER_BEAT)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=_TEMPO_US, time=0))
    prev = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - prev))
        prev = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, t_ms - prev)))
    midi.save(str(path))
    return starts


def _run_fluidsynth(soundfont: Path, midi_path: Path, wav_path: Path, sample_rate: int, gain: float,
                    reverb: bool, chorus: bool) -> None:
    cmd = [_fluidsynth_exe(), "-n", "-i", "-q", "-F", str(wav_path), "-T", "wav", "-O", "float",
           "-r", str(int(sample_rate)), "-g", str(gain),
           "-o", f"synth.reverb.active={int(reverb)}", "-o", f"synth.chorus.active={int(chorus)}",
           str(soundfont), str(midi_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wav_path.is_file():
        err = " ".join((proc.stderr or proc.stdout or "").split())[-300:]
        raise UserError(f"{midi_path}: fluidsynth failed (exit {proc.returncode}): {err}")


def _render_batch(specs: Sequence[NoteSpec], sample_rate: int, soundfont: Path, gain: float) -> list[np.ndarray]:
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="musegansynth-fluid-") as tmp:
        midi_path, wav_path = Path(tmp) / "notes.mid", Path(tmp) / "notes.wav"
        starts = _write_notes_midi(specs, midi_path, sample_rate)
        _run_fluidsynth(soundfont, midi_path, wav_path, sample_rate, gain, reverb=False, chorus=False)
        audio, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
    if sr != sample_rate:  # pragma: no cover - fluidsynth honours -r
        raise UserError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    mono = audio.mean(axis=1)
    out = []
    for spec, start in zip(specs, starts):
        n = spec.n_samples(sample_rate)
        note = np.zeros(n, dtype=np.float32)
        piece = mono[start:start + n]
        note[: len(piece)] = piece
        out.append(note)
    return out


def render_notes(specs: Sequence[NoteSpec], sample_rate: int = 16000, soundfont: str | os.PathLike | None = None,
                 workers: int | None = None, progress: bool = False, gain: float = NOTE_GAIN,
                 batch_size: int = _DEFAULT_BATCH) -> list[np.ndarray]:
    """Render notes with FluidSynth, dry (reverb and chorus off), many per fluidsynth process.

    Args:
        specs: the notes.
        sample_rate: output rate in Hz.
        soundfont: None (FluidR3_GM), a short name or a path; see :func:`find_soundfont`.
        workers: parallel fluidsynth processes (default: the number of CPUs).
        progress: show a tqdm progress bar (in notes).
        gain: FluidSynth master gain (:data:`NOTE_GAIN` keeps loud notes below full scale).
        batch_size: notes per fluidsynth run.
    Returns:
        One float32 mono array per spec, in order, of shape [round((hold_s + release_s) * sample_rate)],
        the note-on at sample 0 (amplitude in [-1, 1] at full scale; the mean of FluidSynth's
        left and right channels).
    """
    specs = list(specs)
    for spec in specs:
        spec.validate()
    check_sample_rate(sample_rate, "sample_rate")
    if not specs:
        return []
    sf_path = find_soundfont(soundfont)
    _fluidsynth_exe()
    check_soundfont(sf_path)
    workers = max(1, int(workers or os.cpu_count() or 1))
    # Keep every worker busy: no more notes per batch than an even share.
    size = max(1, min(int(batch_size), math.ceil(len(specs) / workers)))
    batches = [specs[i:i + size] for i in range(0, len(specs), size)]
    results: list[list[np.ndarray]] = [None] * len(batches)  # type: ignore[list-item]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(specs), unit="note", desc="fluidsynth")
    try:
        # fluidsynth runs in its own process, so threads give real parallelism here.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_render_batch, b, sample_rate, sf_path, gain): i for i, b in enumerate(batches)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(len(batches[futures[fut]]))
    finally:
        if bar is not None:
            bar.close()
    return [note for batch in results for note in batch]


def render_note(program: int, pitch: int, velocity: int, hold_s: float = 3.0, release_s: float = 1.0,
                is_drum: bool = False, sample_rate: int = 16000,
                soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """Render one note; see :func:`render_notes`. Returns float32 [round((hold_s + release_s) * sample_rate)]."""
    spec = NoteSpec(program=program, pitch=pitch, velocity=velocity, hold_s=hold_s, release_s=release_s,
                    is_drum=is_drum)
    return render_notes([spec], sample_rate=sample_rate, soundfont=soundfont, workers=1)[0]


def render_midi_audio(midi_path: str | os.PathLike, sample_rate: int = 44100,
                      soundfont: str | os.PathLike | None = None, reverb: bool = True, chorus: bool = True,
                      gain: float = 0.5) -> np.ndarray:
    """FluidSynth's rendering of a whole MIDI file as it comes: float32 ``[channels, samples]``,
    neither scaled nor quantised (what :func:`render_midi` writes after its peak check; the song
    pipeline renders its stems with this so that each keeps its level relative to the others)."""
    import soundfile as sf

    midi_path = Path(midi_path)
    if not midi_path.is_file():
        raise UserError(f"{midi_path}: MIDI file not found")
    with open(midi_path, "rb") as fh:
        if fh.read(4) != b"MThd":
            raise UserError(f"{midi_path}: not a standard MIDI file")
    sf_path = check_soundfont(find_soundfont(soundfont))
    with tempfile.TemporaryDirectory(prefix="musegansynth-fluid-") as tmp:
        raw = Path(tmp) / "song.wav"
        _run_fluidsynth(sf_path, midi_path, raw, sample_rate, gain, reverb=reverb, chorus=chorus)
        audio, _ = sf.read(str(raw), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T)


def render_midi(midi_path: str | os.PathLike, wav_path: str | os.PathLike, sample_rate: int = 44100,
                soundfont: str | os.PathLike | None = None, reverb: bool = True, chorus: bool = True,
                gain: float = 0.5, headroom_db: float = 1.0) -> Path:
    """Render a whole MIDI file to a stereo 16-bit WAV (written atomically).

    FluidSynth renders in float; when the peak would exceed ``-headroom_db`` dBFS the whole
    file is scaled down to it, so nothing clips.

    Args:
        midi_path: the MIDI file.
        wav_path: output WAV path.
        sample_rate: Hz.
        soundfont: see :func:`find_soundfont`.
        reverb, chorus: FluidSynth's effects (on by default for songs).
        gain: FluidSynth master gain.
        headroom_db: the peak is kept at or below this many dB below full scale.
    Returns:
        ``Path(wav_path)``.
    """
    import soundfile as sf

    wav_path = Path(wav_path)
    audio = render_midi_audio(midi_path, sample_rate, soundfont, reverb=reverb, chorus=chorus, gain=gain).T
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    limit = 10.0 ** (-headroom_db / 20.0)
    if peak > limit:
        audio = audio * (limit / peak)
    fmt = "FLAC" if wav_path.suffix.lower() == ".flac" else "WAV"  # the format the name says
    with atomic_path(wav_path) as tmp_wav:
        sf.write(str(tmp_wav), audio, sample_rate, subtype="PCM_16", format=fmt)
    return wav_path
