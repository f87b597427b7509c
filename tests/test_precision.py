"""classify.precision: auto (landcover.precision): bfloat16 on GPUs that compute it natively and on
CPUs where a one-off micro-benchmark, cached per machine, found it faster; float32 otherwise."""

import json

import pytest

from landcover.precision import MARGIN, auto_precision, cpu_precision, measure_cpu

BF16 = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
PLAIN = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse avx2\n\n"


@pytest.fixture
def cpus(tmp_path):
    (tmp_path / "bf16").write_text(BF16)
    (tmp_path / "plain").write_text(PLAIN)
    return tmp_path


class Bench:
    """A stand-in for the micro-benchmark: the given seconds, counting its calls."""

    def __init__(self, float32, bfloat16):
        self.seconds, self.calls = {"float32": float32, "bfloat16": bfloat16}, 0

    def __call__(self):
        self.calls += 1
        return None if self.seconds["float32"] is None else dict(self.seconds)


def test_a_cpu_takes_bfloat16_only_where_measured_faster(cpus):
    faster, slower, tie = Bench(1.0, 0.8), Bench(1.0, 1.2), Bench(1.0, MARGIN + 0.02)
    assert cpu_precision(str(cpus / "bf16"), cpus / "a.json", faster) == "bfloat16"
    assert cpu_precision(str(cpus / "bf16"), cpus / "b.json", slower) == "float32"
    assert cpu_precision(str(cpus / "bf16"), cpus / "c.json", tie) == "float32"


def test_the_measurement_is_cached_per_machine(cpus):
    cache, bench = cpus / "cache" / "precision.json", Bench(1.0, 0.5)
    assert cpu_precision(str(cpus / "bf16"), cache, bench) == "bfloat16"
    assert cpu_precision(str(cpus / "bf16"), cache, bench) == "bfloat16"
    assert bench.calls == 1
    record = json.loads(cache.read_text())
    assert record["precision"] == "bfloat16" and record["seconds"]["bfloat16"] == 0.5
    # another CPU model: measured again
    (cpus / "other").write_text(BF16.replace("Test CPU", "Other CPU"))
    assert cpu_precision(str(cpus / "other"), cache, Bench(1.0, 1.5)) == "float32"
    # a damaged cache: measured again
    cache.write_text("{not json")
    bench = Bench(1.0, 0.5)
    assert cpu_precision(str(cpus / "bf16"), cache, bench) == "bfloat16" and bench.calls == 1


def test_no_bfloat16_instructions_or_a_failed_benchmark_keep_float32(cpus):
    bench = Bench(1.0, 0.1)
    assert cpu_precision(str(cpus / "plain"), cpus / "p.json", bench) == "float32"
    assert cpu_precision(str(cpus / "none"), cpus / "p.json", bench) == "float32"  # not Linux
    assert bench.calls == 0  # nothing measured without bfloat16 instructions
    failed = Bench(None, None)
    assert cpu_precision(str(cpus / "bf16"), cpus / "f.json", failed) == "float32"
    assert not (cpus / "f.json").exists()  # a failure is not kept


def test_a_gpu_takes_bfloat16_where_it_computes_it_natively(cpus):
    gpu = cpus / "nvidiactl"
    gpu.touch()
    bench = Bench(1.0, 0.5)

    def auto(cc):
        return auto_precision(str(cpus / "plain"), devices=(str(gpu),), capability=lambda: cc,
                              cache=cpus / "g.json", measure=bench)

    assert auto((9, 0)) == "bfloat16"  # Hopper
    assert auto((8, 0)) == "bfloat16"  # Ampere
    assert auto((7, 5)) == "float32"  # Turing: no native bfloat16
    assert auto(None) == "float32"  # the backend sees no GPU: the CPU's rule
    assert bench.calls == 0


@pytest.mark.slow
def test_the_micro_benchmark_runs(monkeypatch):
    seconds = measure_cpu()
    assert seconds is not None and set(seconds) == {"float32", "bfloat16"}
    assert all(0 < v < 10 for v in seconds.values())
