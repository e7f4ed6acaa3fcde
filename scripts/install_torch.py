"""Install the right PyTorch build into the current environment before the project itself.

- NVIDIA GPU present (nvidia-smi answers): the default PyPI wheel, which is a CUDA build on Linux.
- No NVIDIA GPU on Linux: the CPU-only build (~200 MB instead of several GB): from the PyTorch
  CPU index when it is reachable, else the pinned release pip finds locally or on PyPI.
- macOS/Windows: the default wheel (CPU + MPS on Apple silicon).
Does nothing when a torch is already installed. Override with PROTOLAB_TORCH="torch==X" .
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_PIN = "torch==2.13.0"  # the release this project is tested with on CPU


def pip(*args: str) -> None:
    # --no-compile: byte-compiling all of torch up front costs set-up time; Python compiles what is imported.
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def reachable(url: str, timeout_s: float = 3.0) -> bool:
    try:
        urllib.request.urlopen(url, timeout=timeout_s).close()
        return True
    except Exception:
        return False


def has_nvidia_gpu() -> bool:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def main() -> int:
    if importlib.util.find_spec("torch") is not None:
        print("torch already installed; nothing to do")
        return 0
    override = os.environ.get("PROTOLAB_TORCH")
    if override:
        pip(override)
    elif has_nvidia_gpu():
        print("NVIDIA GPU found: installing a CUDA build of torch")
        pip("torch>=2.4")
    elif platform.system() == "Linux":
        if reachable(CPU_INDEX + "/torch/"):
            print("no NVIDIA GPU: installing the CPU-only build of torch from the PyTorch index")
            pip(CPU_PIN, "--index-url", CPU_INDEX, "--extra-index-url", "https://pypi.org/simple")
        else:
            print(f"no NVIDIA GPU and {CPU_INDEX} unreachable: installing {CPU_PIN}")
            pip(CPU_PIN)
    else:
        pip("torch>=2.4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
