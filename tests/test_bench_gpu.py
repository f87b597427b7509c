"""benchmarks/bench_gpu.py --dry-run: the GPU benchmark's code runs on a CPU at tiny sizes with
Keras on JAX and prints every figure (issue 27, item 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.mark.slow
def test_the_gpu_benchmark_runs_dry_on_jax(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, str(BENCH), "--dry-run", "--json", "--workdir",
                           str(tmp_path / "work")], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout[done.stdout.index("{"):])
    assert r["backend"] == "jax" and r["dry_run"] is True
    for what in ("bare", "host_path", "dn_path"):
        assert set(r[what]) == {"float32", "bfloat16"}
        for rows in r[what].values():
            assert rows and all(row["mpx_s"] > 0 and row["batch"] == 2 for row in rows)
    e = r["end_to_end"]
    assert e["size"] == 64 and e["blocks"] >= 1 and e["seconds"] > 0 and e["mpx_s"] > 0
    h = r["end_to_end_host_features"]
    assert h["features_on"] == "host" and h["seconds"] > 0
    assert e["features_on"] == "model"  # classify's auto
    assert r["train"]["steps_s"] > 0 and r["train"]["patches_s"] > 0
    assert set(r["stage_seconds"]) == {"setup", "network", "end_to_end", "train"}
