"""Ahead-of-time CUDA compilation with nvcc: a cubin for one architecture plus PTX that newer
GPUs compile at load, packed into one fatbinary (CUDA's container for exactly this).

Results are cached on disk keyed by the source, the architecture, the flags and nvcc's
version, so recompiling an unchanged model does not run nvcc again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hcompile.errors import CompileError, UsageError
from hcompile.runtime.cache import default_cache_dir

#: No --use_fast_math: it trades exp/div accuracy for speed and outputs must match the CPU.
NVCC_FLAGS = ("-O3", "--expt-relaxed-constexpr", "-diag-suppress=177")
_ARCH = re.compile(r"sm_(\d+)([af]?)")


@dataclass(frozen=True)
class CudaImages:
    """cubin: SASS for ``arch``; ptx: for ``ptx_arch`` and newer; fatbin: both, as the
    CUDA driver loads them (it picks the SASS when it matches the GPU, else JITs the PTX)."""

    arch: str
    ptx_arch: str
    cubin: bytes
    ptx: bytes
    fatbin: bytes


def check_arch(arch: str) -> str:
    _arch_parts(arch)
    return arch


def _arch_parts(arch: str) -> tuple[str, str]:
    """("80", "") for sm_80, ("90", "a") for sm_90a; UsageError for anything else."""
    match = _ARCH.fullmatch(arch)
    if match is None:
        raise UsageError(f"--cuda-arch {arch!r} is not an SM architecture",
                           hint="use the form sm_80, sm_86, sm_90 (sm_75 is CUDA 13's oldest)")
    return match[1], match[2]


def find_nvcc() -> str | None:
    """nvcc from PATH, else from $CUDA_HOME or /usr/local/cuda."""
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return None


def nvcc_version(nvcc: str) -> str:
    proc = subprocess.run([nvcc, "--version"], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout else ""


def compile_cuda(source: str, arch: str, what: str) -> CudaImages:
    """Compile CUDA C ``source`` for ``arch`` (e.g. ``sm_80``): cubin, PTX and fatbinary."""
    number, suffix = _arch_parts(arch)
    ptx_arch = f"compute_{number}"
    nvcc = find_nvcc()
    if nvcc is None:
        raise CompileError(f"{what}: nvcc (the CUDA compiler) is not installed",
                           hint="install the CUDA toolkit, or put nvcc on PATH / set CUDA_HOME")
    fatbinary = Path(nvcc).with_name("fatbinary")
    key = hashlib.sha256("\0".join(
        [nvcc_version(nvcc), arch, " ".join(NVCC_FLAGS), source]).encode()).hexdigest()
    folder = default_cache_dir() / "nvcc" / key
    cubin, ptx, fatbin = (folder / f"gpu.{ext}" for ext in ("cubin", "ptx", "fatbin"))
    if not all(p.is_file() for p in (cubin, ptx, fatbin)):
        folder.mkdir(parents=True, exist_ok=True)
        cu = folder / "gpu.cu"
        cu.write_text(source)
        # The two nvcc runs are independent: run them side by side.
        jobs = [
            [nvcc, "-cubin", f"-arch={arch}", *NVCC_FLAGS, "-o", str(cubin), str(cu)],
            [nvcc, "-ptx", f"-arch={ptx_arch}", *NVCC_FLAGS, "-o", str(ptx), str(cu)],
        ]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for cmd in jobs]
        for cmd, proc in zip(jobs, procs, strict=True):
            out, _ = proc.communicate()
            _check(cmd, proc.returncode, out, cu, what)
        cmd = [str(fatbinary), f"--create={fatbin}", "-64", "--compress=false",
               f"--image3=kind=elf,sm={number}{suffix},file={cubin}",
               f"--image3=kind=ptx,sm={number},file={ptx}"]
        proc2 = subprocess.run(cmd, capture_output=True, text=True)
        _check(cmd, proc2.returncode, proc2.stdout + proc2.stderr, cu, what)
    return CudaImages(arch, ptx_arch, cubin.read_bytes(), ptx.read_bytes(), fatbin.read_bytes())


def _check(cmd: list[str], returncode: int, output: str, source: Path, what: str) -> None:
    if returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise CompileError(f"{what}: {Path(cmd[0]).name} failed (exit {returncode}) on "
                           f"{source}:\n{tail}", hint=f"the command was: {' '.join(cmd)}")
