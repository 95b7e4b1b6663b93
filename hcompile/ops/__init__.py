"""Per-operator knowledge. Importing this package registers every op lowering.

The modules are listed explicitly (no scanning): add a new op module here.
"""

from hcompile.ops import (  # noqa: F401 - registration side effects
    activation,
    bitcast,
    conv,
    deform,
    elementwise,
    gather,
    generate,
    grid_sample,
    linalg,
    logical,
    matmul,
    norm,
    pad,
    pool,
    qlinear,
    quantize,
    recurrent,
    reduce,
    reorder,
    resize,
    roi_align,
    shape,
    slice,
    softmax,
    sort_scan,
    spectral,
    stft,
    tensor,
    unpool,
)
from hcompile.ops.registry import OpImpl, lookup, register, supported_ops

__all__ = ["OpImpl", "lookup", "register", "supported_ops"]
