"""Process settings for training on CPU, applied once, before the heavy allocations of a fit.

Two things a hand-written PyTorch loop usually leaves at their defaults, and that cost time on CPU:

- **glibc's allocator gives memory back to the OS after nearly every step.** A convolution's
  buffers (a few MB each) are above glibc's mmap threshold or at the top of the heap, so each step
  maps and unmaps them, or trims the heap, and touches the pages again: millions of minor page
  faults per fit and up to 1.5x the time on the CNN benchmark (bench/README.md). Raising the mmap
  threshold to its maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB keeps those buffers in
  the heap and reuses them. glibc reads its `MALLOC_*_` variables only at start-up, but `mallopt`
  changes the same settings at run time. The cost: up to 1 GiB of freed memory stays with the
  process instead of going back to the OS.
- **More compute threads than cores.** PyTorch starts one intra-op thread per core it sees, which
  can be more than the cores this process may run on (an affinity mask, `taskset`). The count is
  lowered to the physical cores available, never raised.

Nothing is changed where the user already decided: a `MALLOC_MMAP_THRESHOLD_`,
`MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES` variable, jemalloc or tcmalloc in `LD_PRELOAD`,
`OMP_NUM_THREADS` or `MKL_NUM_THREADS`. Outside Linux with glibc the allocator part is a no-op.
`STRATA_NO_TUNING=1` turns all of it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from dataclasses import dataclass, field

OPT_OUT = "STRATA_NO_TUNING"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024
STREAM_MMAP_THRESHOLD = 1024 * 1024  # batch prediction: buffers of 1 MiB and more go back when freed
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


@dataclass
class Tuning:
    """What `tune_for_training` did, and why it left the rest alone (for logs and the benchmarks)."""

    malloc: bool = False
    threads: int | None = None  # the intra-op thread count set, if it was lowered
    skipped: list[str] = field(default_factory=list)


_done: Tuning | None = None


def tune_for_training() -> Tuning:
    """Tune this process for training on CPU, once; later calls return the first call's result."""
    global _done
    if _done is None:
        _done = _tune()
    return _done


def _tune() -> Tuning:
    result = Tuning()
    if os.environ.get(OPT_OUT, "").strip() not in ("", "0"):
        result.skipped.append(f"{OPT_OUT} is set")
        return result
    result.malloc = _raise_malloc_thresholds(result.skipped)
    result.threads = _limit_threads(result.skipped)
    return result


def tune_for_streaming() -> bool:
    """Bound the memory of batch prediction (strata.batch): glibc's mmap threshold fixed at 1 MiB, so
    a chunk's large buffers are mapped and given back when freed, not left in a heap that glibc's
    moving threshold (it rises to the largest block freed) lets grow. Predicting 1M rows from Parquet
    peaked at 235-313 MB (medians over runs varying by +-60 MB) with the default, 172-186 MB with the
    fixed threshold for 1M and 3M rows, at about 20% fewer rows/s (bench/scaling.py). True when it
    took. Not applied in a process tuned for training (its settings stay), nor over the user's
    settings. It stays for the rest of the process (a later fit sets its own thresholds again)."""
    skipped: list[str] = []
    if _done is not None or os.environ.get(OPT_OUT, "").strip() not in ("", "0"):
        return False
    return _mallopt([(M_MMAP_THRESHOLD, STREAM_MMAP_THRESHOLD)], skipped)


def _raise_malloc_thresholds(skipped: list[str]) -> bool:
    """Keep freed memory in the heap (see the module docstring); True when both settings took."""
    # Both, or the trim threshold alone makes the CNN slower (measured: bench/README.md).
    return _mallopt([(M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)], skipped)


def _mallopt(settings: list[tuple[int, int]], skipped: list[str]) -> bool:
    """glibc's `mallopt` for each (parameter, value), unless the user chose the allocator or its
    settings; True when every one took, else the reason is added to `skipped`."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        skipped.append("malloc: not glibc")
        return False
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in OTHER_ALLOCATORS):
        skipped.append("malloc: another allocator is preloaded")
        return False
    if any(var in os.environ for var in MALLOC_ENV):
        skipped.append("malloc: set in the environment")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        skipped.append("malloc: mallopt not found")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([bool(mallopt(param, value)) for param, value in settings])


def _limit_threads(skipped: list[str]) -> int | None:
    """Lower torch's intra-op threads to the physical cores this process may use; never raise them."""
    if any(var in os.environ for var in THREAD_ENV):
        skipped.append("threads: set in the environment")
        return None
    import torch

    cores = physical_cores()
    if cores is None or torch.get_num_threads() <= cores:
        return None
    torch.set_num_threads(cores)
    return cores


def physical_cores() -> int | None:
    """Physical cores among the CPUs this process may run on (Linux sysfs topology); else None."""
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as pkg, open(f"{base}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            return len(cpus)  # no topology: count the CPUs
    return len(cores) or None


def use_channels_last(model: object) -> bool:
    """Put a CPU network with 2-d convolutions in channels-last layout (NHWC) for training; True when
    it did. oneDNN's convolutions run faster on it: 20-35% less CPU time per epoch on the CNN
    benchmark (bench/README.md). The inputs need no conversion: a channels-last weight makes the
    convolution choose that layout, and its outputs carry it on. The caller converts the network
    back (`model.to(memory_format=torch.contiguous_format)`) when training ends, so that saved and
    exported weights are plain contiguous tensors. Off with STRATA_NO_TUNING=1."""
    import torch

    if os.environ.get(OPT_OUT, "").strip() not in ("", "0") or not isinstance(model, torch.nn.Module):
        return False
    params = list(model.parameters())
    if not params or any(p.device.type != "cpu" for p in params):
        return False
    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return False
    model.to(memory_format=torch.channels_last)
    return True
