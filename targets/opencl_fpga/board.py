"""Board binaries from the FPGA vendors' offline compilers, when one is installed.

``aoc`` (Intel FPGA SDK for OpenCL / oneAPI FPGA add-on) makes an ``.aocx`` for
``-board=<board>``; ``v++`` (AMD Vitis) compiles each kernel to an ``.xo`` and links them
into an ``.xclbin`` for ``--platform <board>``. Hardware builds take hours, so results are
cached on disk keyed by the source, the tool and the board. Without the tool the artifact
carries the OpenCL C source only, and the runtime builds it for whatever OpenCL device the
serving host has.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from hcompile.errors import CompileError
from hcompile.runtime.cache import default_cache_dir
from hcompile.targets.opencl_fpga.profile import FpgaProfile
from hcompile.targets.opencl_fpga.source import kernel_names

log = logging.getLogger("hcompile")

#: compiler -> (binary suffix, vendor)
BINARY_KINDS = {"aoc": ("aocx", "intel"), "v++": ("xclbin", "xilinx")}


def board_binary(source: str, profile: FpgaProfile, what: str) -> bytes | None:
    """The board binary for ``source``, or None when no vendor compiler is asked for or the
    one asked for is not on PATH (then the artifact ships source only, with a warning)."""
    tool = profile.compiler
    if tool is None:
        return None
    if shutil.which(tool) is None:
        log.warning("%s: %s is not on PATH; the artifact carries OpenCL C source only, built "
                    "at load for the serving host's OpenCL device", what, tool)
        return None
    if not profile.board:
        raise CompileError(f"{what}: --fpga-compiler {tool} needs a board",
                           hint="set HCOMPILE_FPGA_BOARD (aoc -board= / v++ --platform)")
    suffix = BINARY_KINDS[tool][0]
    key = hashlib.sha256(f"{tool}\0{profile.board}\0{source}".encode()).hexdigest()
    folder = default_cache_dir() / "fpga-builds" / key
    binary = folder / f"fpga.{suffix}"
    if binary.is_file():
        return binary.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    cl_file = folder / "fpga.cl"
    cl_file.write_text(source)
    if tool == "aoc":
        steps = [["aoc", f"-board={profile.board}", str(cl_file), "-o", str(binary)]]
    else:
        objects = [folder / f"{name}.xo" for name in kernel_names(source)]
        steps = [["v++", "-c", "-t", "hw", "--platform", profile.board, "-k", obj.stem,
                  "-o", str(obj), str(cl_file)] for obj in objects]
        steps.append(["v++", "-l", "-t", "hw", "--platform", profile.board,
                      *map(str, objects), "-o", str(binary)])
    for cmd in steps:
        _run(cmd, folder, cl_file, what)
    return binary.read_bytes()


def _run(cmd: list[str], folder: Path, source: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise CompileError(f"{what}: {cmd[0]} failed (exit {proc.returncode}) on {source}:\n"
                           f"{tail}", hint=f"the full build is in {folder}")
