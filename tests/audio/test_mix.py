"""The mixer: pan law, volumes, gated loudness, the limiter's ceiling, mastering, WAV/FLAC output."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio.mix import (CEILING_DB, db_to_gain, limit, loudness_db, master, master_with_gain, mix_stems, pan_gains, read_wav,
                       write_wav)
from pipeline.errors import UserError

SR = 16000


def _sine(f=440.0, seconds=2.0, amp=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_pan_law_is_equal_power():
    for p in (-1.0, -0.3, 0.0, 0.5, 1.0):
        left, right = pan_gains(p)
        assert left ** 2 + right ** 2 == pytest.approx(1.0)
    assert pan_gains(-1.0) == pytest.approx((1.0, 0.0))
    assert pan_gains(1.0) == pytest.approx((0.0, 1.0), abs=1e-12)
    assert pan_gains(None) == pytest.approx((2 ** -0.5, 2 ** -0.5))


def test_mix_stems_volumes_and_pans():
    stems = np.stack([np.ones(4, np.float32), 2 * np.ones(4, np.float32)])
    mono = mix_stems(stems, [0.0, -6.0])
    assert mono.shape == (1, 4)
    assert mono[0, 0] == pytest.approx(1 + 2 * db_to_gain(-6.0))
    stereo = mix_stems(stems, [0.0, 0.0], [-1.0, None])
    assert stereo.shape == (2, 4)
    assert stereo[0, 0] == pytest.approx(1 + 2 * 2 ** -0.5)
    assert stereo[1, 0] == pytest.approx(2 * 2 ** -0.5, abs=1e-6)


def test_loudness_of_known_signals():
    assert loudness_db(_sine(), SR) == pytest.approx(-3.01, abs=0.02)
    assert loudness_db(_sine(amp=0.1), SR) == pytest.approx(-23.01, abs=0.02)
    # gating: a long silence does not lower the reading
    padded = np.concatenate([_sine(amp=0.1), np.zeros(5 * SR, np.float32)])
    assert loudness_db(padded, SR) == pytest.approx(-23.01, abs=0.5)  # edge blocks pass the gate
    assert loudness_db(np.zeros(SR, np.float32), SR) == float("-inf")


def test_limiter_never_exceeds_the_ceiling_on_loud_input():
    rng = np.random.default_rng(0)
    x = _sine(amp=4.0) + 0.5 * rng.standard_normal(2 * SR).astype(np.float32)
    x[SR // 2] = 30.0  # a lone spike
    x = np.stack([x, -0.5 * x])
    y = limit(x, SR, ceiling_db=-1.0)
    ceiling = db_to_gain(-1.0)
    assert y.shape == x.shape
    assert np.abs(y).max() <= ceiling + 1e-7
    assert np.abs(y).max() > 0.95 * ceiling  # it limits, it does not just scale everything down


def test_limiter_is_local_and_transparent_below_the_ceiling():
    x = _sine(amp=0.5)
    x[SR] = 3.0  # one spike in the middle
    y = limit(x, SR, ceiling_db=-1.0, lookahead_s=0.005)
    far = np.r_[0:SR - 400, SR + 400:len(x)]
    np.testing.assert_array_equal(y[far], x[far])  # untouched away from the spike
    assert np.abs(y).max() <= db_to_gain(-1.0) + 1e-7
    # the gain ramps down before the spike: no step in the gain curve
    gain = y[SR - 160:SR + 160] / np.where(np.abs(x[SR - 160:SR + 160]) > 1e-3, x[SR - 160:SR + 160], 1)
    assert np.max(np.abs(np.diff(gain[np.abs(x[SR - 160:SR + 160]) > 0.05]))) < 0.2


def test_master_meets_the_loudness_target_and_ceiling():
    rng = np.random.default_rng(1)
    quiet = 0.01 * rng.standard_normal((2, 3 * SR)).astype(np.float32)
    out = master(quiet, SR, target_db=-16.0, ceiling_db=-1.0)
    assert loudness_db(out, SR) == pytest.approx(-16.0, abs=0.5)
    assert np.abs(out).max() <= db_to_gain(-1.0) + 1e-7
    loud = 3.0 * np.stack([_sine(seconds=3.0), _sine(330.0, seconds=3.0)])
    out = master(loud, SR, target_db=-14.0, ceiling_db=-1.0)
    assert loudness_db(out, SR) == pytest.approx(-14.0, abs=0.5)
    assert np.abs(out).max() <= db_to_gain(-1.0) + 1e-7
    silent = master(np.zeros((1, SR), np.float32), SR)
    assert not silent.any()


@pytest.mark.parametrize("amp", [1e-4, 1e-5])
def test_master_raises_a_mix_below_the_loudness_gate(amp):
    """Every track turned far down (-60 dB) leaves the mix under the -70 dB absolute gate: it is
    mastered all the same, and its gain curve still takes the mix to the mastered song."""
    quiet = np.stack([_sine(seconds=3.0, amp=amp)])
    assert loudness_db(quiet, SR) == float("-inf")
    out, gain = master_with_gain(quiet, SR, target_db=-16.0, ceiling_db=-1.0)
    assert loudness_db(out, SR) == pytest.approx(-16.0, abs=0.5)
    assert np.abs(out).max() <= db_to_gain(-1.0) + 1e-7
    np.testing.assert_allclose(quiet * gain[None], out, atol=1e-6)


def test_master_leaves_silence_alone():
    for mix in (np.zeros((1, SR), np.float32), np.full((1, SR), 1e-8, np.float32)):   # 1e-8: under -120 dBFS
        out, gain = master_with_gain(mix, SR)
        assert np.array_equal(out, mix) and np.array_equal(gain, np.ones(mix.shape[1]))


@pytest.mark.parametrize("flac", [False, True])
def test_write_wav_round_trip(tmp_path, flac):
    x = np.stack([_sine(amp=0.5, seconds=0.5), _sine(220, amp=0.25, seconds=0.5)])
    path = tmp_path / ("a.flac" if flac else "a.wav")
    write_wav(path, x, SR, flac=flac)
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.channels, info.samplerate) == \
        ("FLAC" if flac else "WAV", "PCM_16", 2, SR)
    y, sr = read_wav(path)
    assert sr == SR and y.shape == x.shape
    assert np.abs(y - x).max() <= 1.0 / 32767
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left


def test_read_wav_unreadable(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(UserError, match="bad.wav"):
        read_wav(bad)


@pytest.mark.parametrize("flac", [False, True])
def test_a_mastered_peak_reads_back_under_the_ceiling(tmp_path, flac):
    # from QA: a -1 dBFS negative peak came back from 16 bits at -0.99985 dBFS (-29205 / 32768)
    x = master(np.stack([_sine(amp=0.9, seconds=0.5), -_sine(330, amp=0.9, seconds=0.5)]), SR)
    ceiling = 10 ** (CEILING_DB / 20)
    assert np.abs(x).max() <= ceiling
    x[0, 100], x[1, 200] = -ceiling, ceiling      # the worst case: both signs at the ceiling itself
    path = tmp_path / ("m.flac" if flac else "m.wav")
    write_wav(path, x, SR, flac=flac)
    y, _ = read_wav(path)
    assert np.abs(y).max() <= ceiling and np.abs(y - x).max() <= 1.0 / 32767
    # from review: one NaN made the peak NaN, and the clip to it every sample (written as -1)
    x[0, 300] = np.nan
    write_wav(path, x, SR, flac=flac)
    z, _ = read_wav(path)
    assert z[0, 300] == 0 and np.abs(np.delete(z[0], 300) - np.delete(y[0], 300)).max() <= 1.0 / 32767


def test_a_full_disk_while_writing_audio_is_said_as_such(tmp_path, monkeypatch):
    """From review: libsndfile reports a full disk as 'System error.' (a RuntimeError), so the CLI
    called it an internal error."""
    import errno
    import shutil

    import soundfile as sf

    def fail(*args, **kwargs):
        raise sf.SoundFileError("System error.")

    monkeypatch.setattr(sf, "write", fail)
    usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 0))
    with pytest.raises(OSError) as exc:
        write_wav(tmp_path / "a.wav", np.zeros((1, 100), np.float32), SR)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "a.wav")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 40, 0, 1 << 40))
    with pytest.raises(UserError, match=r"a.wav: cannot write audio \(System error.\)"):
        write_wav(tmp_path / "a.wav", np.zeros((1, 100), np.float32), SR)
    assert list(tmp_path.iterdir()) == []
