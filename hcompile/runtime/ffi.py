"""Import ``tvm_ffi`` for the runtime without dragging PyTorch in.

``tvm_ffi/__init__.py`` imports torch whenever it is installed (a work-around for a symbol
clash that only matters when both are used together). The runtime never uses torch, and
importing it costs 1-6 s per process, so while ``tvm_ffi`` loads, ``import torch`` is made to
fail — unless the application already imported torch itself, in which case nothing changes.
"""

from __future__ import annotations

import sys
from types import ModuleType


def tvm_ffi() -> ModuleType:
    loaded = sys.modules.get("tvm_ffi")
    if loaded is not None:
        return loaded
    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        import tvm_ffi as module
    finally:
        if block:
            del sys.modules["torch"]
    return module
