"""The hcompile IR: :class:`Graph`, :class:`Node`, :class:`TensorType`, :func:`verify`."""

from hcompile.ir.graph import Graph, Node
from hcompile.ir.text import format_graph
from hcompile.ir.types import TensorType
from hcompile.ir.verify import verify

__all__ = ["Graph", "Node", "TensorType", "format_graph", "verify"]
