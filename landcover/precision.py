"""What ``classify.precision: auto`` stands for on this machine, by measurement where it matters.

* **A GPU** (an NVIDIA device node present): ``bfloat16`` where the backend reports a device that
  computes it natively (compute capability 8.0 or later: Ampere, Hopper and newer), else
  ``float32``. On one H200 the default network ran 1.6x as fast in bfloat16 and changed 0.06 % of
  the pixels (issue 27).
* **A CPU with bfloat16 instructions** (Linux flags ``amx_bf16`` or ``avx512_bf16``): a one-off
  micro-benchmark (:func:`measure_cpu`: the 3 x 3 gate convolution of a ConvLSTM step, float32
  against Keras ``mixed_bfloat16``) decides; ``bfloat16`` only where it was at least
  :data:`MARGIN` faster. The result is cached per machine (:func:`cache_file`), keyed by the CPU's
  model and flags, the core count, the backend and the library versions, so it runs once.
* **Any other CPU**: ``float32`` (bfloat16 is emulated there, hence slower), nothing measured.

The precision that ran is in the run's summary and the map's tags (``classify.precision``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU features (Linux ``/proc/cpuinfo`` flags) with which the CPU computes bfloat16 natively."""

NVIDIA_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0")
MARGIN = 0.95
"""bfloat16 is chosen on a CPU only where the benchmark took at most this share of float32's time
(a tie or noise keeps float32, whose maps do not depend on the CPU)."""
CACHE_FORMAT = 2  # 2: bfloat16 measured with the gates in float32, as the streamed network runs


def backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def cache_file() -> Path:
    """Where the measurement is kept: ``$LANDCOVER_CACHE_DIR``, else ``$XDG_CACHE_HOME/landcover``,
    else ``~/.cache/landcover``; file ``precision.json``."""
    root = os.environ.get("LANDCOVER_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "landcover")
    return Path(root) / "precision.json"


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """``(model name, flags)`` of the first processor in ``cpuinfo`` (empty where unreadable)."""
    name, flags = "", []
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name") and not name:
                    name = line.partition(":")[2].strip()
                elif line.startswith("flags"):
                    flags = line.partition(":")[2].split()
                    break
    except OSError:
        pass
    return name, flags


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("keras", backend()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def machine_key(cpuinfo: str = "/proc/cpuinfo") -> str:
    """What the measurement depends on, hashed: CPU model and flags, cores, backend, versions."""
    name, flags = cpu_flags(cpuinfo)
    record = {"cpu": name, "flags": sorted(flags), "cores": os.cpu_count(),
              "backend": backend(), "versions": _versions()}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


MEASURE_TIMEOUT = 300  # seconds; a benchmark that does not end keeps float32


def measure_here(size: int = 96, channels: int = 32, filters: int = 64,
                 repeats: int = 15) -> dict[str, float]:
    """Seconds of one call (the fastest of ``repeats``, after a traced warm-up) of a ConvLSTM
    step's gate convolution (``size``^2 x ``channels`` -> ``filters``, 3 x 3, then the gates'
    elementwise activations) built in float32 and in Keras ``mixed_bfloat16`` as the streamed
    network computes it (the convolutions in bfloat16, the gates in float32:
    :class:`landcover.models.layers.StreamedConvLSTM`), in this process
    (it sets Keras's global dtype policy: :func:`measure_cpu` runs it in a process of its own).
    The two networks are called in turn, so that other work on the machine slows both alike: one
    after the other, under load, float32 once measured 5.5 ms against 6.7 for bfloat16 on a CPU
    where, idle, bfloat16 took 2.5 ms against 3.0."""
    import keras
    import numpy as np

    x = np.random.default_rng(0).standard_normal((1, size, size, channels)).astype(np.float32)
    models = {}
    for precision, policy in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
        keras.config.set_dtype_policy(policy)
        inp = keras.Input((size, size, channels))
        z = keras.ops.cast(keras.layers.Conv2D(filters, 3, padding="same")(inp), "float32")
        i, f, c, o = keras.ops.split(z, 4, axis=-1)
        h = keras.ops.sigmoid(o) * keras.ops.tanh(
            keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * keras.ops.tanh(c))
        models[precision] = keras.Model(inp, keras.layers.Conv2D(filters, 3, padding="same")(h))
        models[precision].predict_on_batch(x)  # traces
    keras.config.set_dtype_policy("float32")
    times = {precision: [] for precision in models}
    for _ in range(repeats):
        for precision, model in models.items():
            t0 = time.perf_counter()
            model.predict_on_batch(x)
            times[precision].append(time.perf_counter() - t0)
    return {precision: float(min(ts)) for precision, ts in times.items()}


def measure_cpu() -> dict[str, float] | None:
    """:func:`measure_here` in a fresh Python process (the backend's start-up lines and the
    global dtype policy stay there); None where it failed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    code = "import json, landcover.precision as p; print(json.dumps(p.measure_here()))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                              text=True, env=env, timeout=MEASURE_TIMEOUT)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        detail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        detail = [str(exc)]
    log.warning("classify.precision auto: the bfloat16 benchmark failed (%s); float32",
                detail[0][:200])
    return None


def cpu_precision(cpuinfo: str = "/proc/cpuinfo", cache: Path | None = None,
                  measure: Callable[[], dict | None] = measure_cpu) -> str:
    """``bfloat16`` on a CPU with bfloat16 instructions where :func:`measure_cpu` found it at
    least :data:`MARGIN` faster (measured once, then read from ``cache``), else ``float32``."""
    _, flags = cpu_flags(cpuinfo)
    if not any(flag in flags for flag in BF16_CPU_FLAGS):
        return "float32"
    cache = cache_file() if cache is None else cache
    key = machine_key(cpuinfo)
    try:
        saved = json.loads(cache.read_text())
        if saved.get("format") == CACHE_FORMAT and saved.get("key") == key and \
                saved.get("precision") in ("float32", "bfloat16"):
            return saved["precision"]
    except (OSError, ValueError, AttributeError):
        pass  # none yet, or damaged: measured again
    seconds = measure()
    if seconds is None:
        return "float32"  # not kept: measured again next time
    chosen = "bfloat16" if seconds["bfloat16"] <= MARGIN * seconds["float32"] else "float32"
    log.info("classify.precision auto: bfloat16 %.1f ms, float32 %.1f ms a call on this CPU: %s "
             "(kept in %s)", 1e3 * seconds["bfloat16"], 1e3 * seconds["float32"], chosen, cache)
    record = {"format": CACHE_FORMAT, "key": key, "precision": chosen, "seconds": seconds,
              "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:  # a temporary name, then renamed: a concurrent run reads a whole record or none
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, cache)
    except OSError as exc:  # a read-only home: measured again next time
        log.debug("cannot keep the precision measurement in %s: %s", cache, exc)
    return chosen


def gpu_compute_capability() -> tuple[int, int] | None:
    """The first GPU's compute capability as the Keras backend reports it (None: no GPU)."""
    name = backend()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            cc = tf.config.experimental.get_device_details(gpus[0]).get(
                "compute_capability") if gpus else None
            return tuple(int(v) for v in cc) if cc else None
        if name == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            cc = getattr(gpus[0], "compute_capability", None) if gpus else None
            return tuple(int(v) for v in str(cc).split(".")[:2]) if cc else None
        if name == "torch":
            import torch

            return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() \
                else None
    except (ImportError, RuntimeError, ValueError, IndexError):
        return None
    return None


def has_nvidia_gpu(devices: Sequence[str] | None = None) -> bool:
    """An NVIDIA device node (:data:`NVIDIA_DEVICES`) is present: nothing imported or measured."""
    return any(os.path.exists(device) for device in devices or NVIDIA_DEVICES)


def auto_precision(cpuinfo: str = "/proc/cpuinfo", devices: Sequence[str] = NVIDIA_DEVICES, *,
                   capability: Callable[[], tuple | None] = gpu_compute_capability,
                   cache: Path | None = None,
                   measure: Callable[[], dict | None] = measure_cpu) -> str:
    """The inference precision ``classify.precision: auto`` stands for here (module docstring)."""
    if has_nvidia_gpu(devices):
        cc = capability()
        if cc is not None:
            return "bfloat16" if tuple(cc) >= (8, 0) else "float32"
    return cpu_precision(cpuinfo, cache, measure)
