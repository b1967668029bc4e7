"""From QA: the benchmark scripts refuse values they cannot use, and paths typed wrong, with one
line and exit status 2 (tracebacks, 'inf' timings and 'skipped' with exit 0 before)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args,says", [
    (["bench_symbolic_speed.py", "--iters", "0"], "argument --iters: 0: must be at least 1"),
    (["bench_symbolic_speed.py", "--device", "foo"], "argument --device: 'foo': choose cpu, cuda or cuda:N"),
    (["bench_symbolic_speed.py", "--configs", "nosuch"], "argument --configs: invalid choice: 'nosuch'"),
    (["bench_audio_speed.py", "--steps", "0"], "argument --steps: 0: must be at least 1"),
    (["bench_spectral_roundtrip.py", "--repeat", "0"], "argument --repeat: 0: must be at least 1"),
    (["bench_spectral_roundtrip.py", "--load-notes", "/nonexistent/n.npy"], "/nonexistent/n.npy: no such file"),
    (["bench_audio_range.py", "--programs", "500"], "argument --programs: 500: a GM program is 0 to 127"),
    (["bench_symbolic_rhythm.py", "--max-steps", "0"], "argument --max-steps: 0: must be at least 1"),
    (["bench_symbolic_styles.py", "--metrics", "BOGUS"], "argument --metrics: invalid choice: 'BOGUS'"),
    (["bench_symbolic_quality.py", "--weights", "/nonexistent/w.safetensors"],
     "bench_symbolic_quality: error: missing /nonexistent/w.safetensors"),
    (["bench_symbolic_baselines.py", "--data", "/nonexistent"], "bench_symbolic_baselines: error: missing /nonexistent"),
    (["bench_audio_range.py", "--weights", "/nonexistent/w.safetensors"],
     "bench_audio_range: error: --weights /nonexistent/w.safetensors: not found"),
])
def test_bad_benchmark_arguments_exit_2_in_one_line(args, says):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr.strip().splitlines()[-1] and "Traceback" not in done.stderr
