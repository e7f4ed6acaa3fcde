"""Which compute device Protolab uses: CUDA, then Apple MPS, then the CPU.

`describe_compute` is cheap (no torch import) so the Home page can show it at
start-up; `resolve_device` imports torch and is meant for the worker.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core import settings

DEVICE_KINDS = ("cpu", "cuda", "mps")  # what a model kind may run on
DEVICES = ("auto", *DEVICE_KINDS)  # what a run may ask for; "cuda:N" also names one GPU


def is_device(name: object) -> bool:
    """Whether a run may ask for `name`: one of DEVICES (any case) or "cuda:N"."""
    device = str(name).lower()
    return device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit())


def unknown_device_text(name: object) -> str:
    return f"unknown device {name!r}: use {', '.join(DEVICES)}, cuda:N"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_gib: float


@dataclass(frozen=True)
class ComputeInfo:
    kind: str  # "cuda" | "mps" | "cpu"
    cpu_cores: int
    gpus: list[GpuInfo] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.kind == "cuda":
            names = ", ".join(f"{g.name} ({g.memory_gib:.0f} GiB)" for g in self.gpus)
            return f"CUDA GPU: {names}"
        if self.kind == "mps":
            return f"Apple GPU (MPS), {self.cpu_cores} CPU cores"
        return f"CPU only: {self.cpu_cores} cores"


def _nvidia_gpus() -> list[GpuInfo]:
    # nvidia-smi answers in ~50 ms; importing torch to ask costs seconds.
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.rpartition(",")
        try:
            gpus.append(GpuInfo(name=name.strip(), memory_gib=float(mem) / 1024))
        except ValueError:
            continue
    return gpus


def describe_compute() -> ComputeInfo:
    """Describe the machine's accelerators without importing torch."""
    cores = os.cpu_count() or 1
    gpus = _nvidia_gpus()
    if gpus:
        return ComputeInfo(kind="cuda", cpu_cores=cores, gpus=gpus)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return ComputeInfo(kind="mps", cpu_cores=cores)
    return ComputeInfo(kind="cpu", cpu_cores=cores)


def resolve_device(requested: str = "auto") -> str:
    """Turn "auto"/"cuda"/"mps"/"cpu" (or "cuda:1") into a device torch can use, or raise ValueError."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible to torch")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but Apple MPS is not available")
    if not is_device(requested):
        raise ValueError(unknown_device_text(requested))
    return requested


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run scikit-learn's dense solvers (lbfgs on sentence embeddings) on one BLAS thread.

    Their matrix products are small, and OpenBLAS's second thread spins more than it helps: on the 2-core box a
    logistic regression on 1,000-3,000 tweets' MiniLM embeddings took 8-24x longer with two threads than with one
    (bench/blas_threads.py; the same at 300), and with other work on the machine one audit fit took 72 CPU-seconds
    instead of 2.
    Torch's intra-op threads are not BLAS threads and keep their setting.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class CpuThreadGovernor:
    """Keeps torch's intra-op threads within the cores that other programs leave free, while training on the CPU.

    Torch's OpenMP threads spin at the end of every parallel region until all of them arrive. When another program
    takes one of a laptop's two cores (a second run, the audit, a browser tab), the thread that lost its core holds
    the other one spinning, and a step takes three times as long: with one busy core the LSTM fell from 907 to 286
    samples/s and MiniLM from 136 to 43; governed, they keep 580 and 83 (bench/cpu_contention.py). So every
    `every_s` seconds the loop asks how many cores the other programs used since the last check (all CPU time minus
    this process's), and sets the thread count to the cores left, rounded to the nearest whole (at least one, at
    most the count it started with): one thread beats two from about half a core of other work on (BENCHMARKS.md).
    Each change is passed to `on_change(threads, other_programs_cores)`.
    """

    def __init__(self, device: str, *, every_s: float = 1.0, on_change: Any = None) -> None:
        self.enabled = device == "cpu" and settings.ADAPT_THREADS.get()  # 0: the benchmarks' baseline
        self.every_s = every_s
        self.on_change = on_change or (lambda threads, others: None)
        if not self.enabled:
            return
        import psutil
        import torch

        self._process = psutil.Process()
        self.cores = psutil.cpu_count() or 1
        self.start_threads = self.threads = torch.get_num_threads()
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        import psutil

        total = psutil.cpu_times()
        busy = sum(total) - total.idle - getattr(total, "iowait", 0.0)
        own = self._process.cpu_times()
        return time.monotonic(), busy, own.user + own.system

    def others_cores(self) -> float | None:
        """Cores the other programs used since the last call; None until `every_s` has passed."""
        now = time.monotonic()
        if now - self._last[0] < self.every_s:
            return None
        current = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, current
        self._last = current
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9)

    def poll(self) -> None:
        """Called between training steps: cheap (a clock read) except once every `every_s` seconds."""
        if not self.enabled:
            return
        others = self.others_cores()
        if others is None:
            return
        wanted = max(1, min(self.start_threads, math.floor(self.cores - others + 0.5)))
        if wanted != self.threads:
            import torch

            torch.set_num_threads(wanted)
            self.threads = wanted
            self.on_change(wanted, others)

    def restore(self) -> None:
        if self.enabled and self.threads != self.start_threads:
            import torch

            torch.set_num_threads(self.start_threads)
            self.threads = self.start_threads

    # `with CpuThreadGovernor(device) as threads:` around a training loop restores the count however it ends.
    def __enter__(self) -> CpuThreadGovernor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def governor_for_run(device: str, on_event: Any) -> CpuThreadGovernor:
    """The governor of one text training run; the run's events (`on_event`) say the first time it gave up threads."""
    said = False

    def on_change(threads: int, others: float) -> None:
        nonlocal said
        if not said and threads < governor.start_threads:
            said = True
            on_event({"event": "cpu_threads", "threads": threads, "other_programs_cores": round(others, 2),
                      "message": f"other programs are using {others:.1f} of this machine's {governor.cores} CPU "
                                 f"cores: training on {threads} thread{'s' if threads > 1 else ''} while they do "
                                 f"(faster than fighting them for the cores)"})

    governor = CpuThreadGovernor(device, on_change=on_change)
    return governor
