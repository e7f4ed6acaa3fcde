"""Which compute device Protolab uses: CUDA, then Apple MPS, then the CPU.

`describe_compute` is cheap (no torch import) so the Home page can show it at
start-up; `resolve_device` imports torch and is meant for the worker.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


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
    if requested not in {"cpu", "mps"} and not requested.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda or mps")
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
