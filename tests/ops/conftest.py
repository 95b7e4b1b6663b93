"""Op-test fixtures.

TEMPORARY: ``LowerContext.value`` in targets/lowering.py builds constants with
``relax.const(array)``, which narrows int64 -> int32 and float64 -> float32 (TVM's default when
no dtype is given). Until that file passes ``str(array.dtype)``, the op tests patch it here and
warn; the patch switches itself off once the fix lands.
"""

from __future__ import annotations

import inspect
import warnings

from tvm import relax

from hcompile.ops.common import const
from hcompile.targets import lowering

_NARROWING = "relax.const(self.graph.constants[name])"

if _NARROWING in inspect.getsource(lowering.LowerContext.value):
    warnings.warn(
        "targets/lowering.py: LowerContext.value narrows int64/float64 constants; "
        "patched for the op tests (use relax.const(value, str(value.dtype)))",
        stacklevel=1,
    )

    def _value(self: lowering.LowerContext, name: str) -> relax.Expr:
        if name not in self.values:
            if name not in self.graph.constants:
                raise KeyError(f"tensor '{name}' has no Relax value")
            self.values[name] = const(self.graph.constants[name])
        return self.values[name]

    lowering.LowerContext.value = _value  # type: ignore[method-assign]
