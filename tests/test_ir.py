"""The IR: types, graph queries, text form and verify()."""

from __future__ import annotations

import numpy as np
import pytest

from hcompile.errors import IRVerifyError
from hcompile.ir import Graph, Node, TensorType, format_graph, verify

F = "float32"


def small_graph() -> Graph:
    return Graph(
        name="g",
        inputs={"x": TensorType((1, 4), F)},
        outputs=["y"],
        nodes=[
            Node("MatMul", "mm", ["x", "w"], ["h"], output_types=[TensorType((1, 3), F)]),
            Node("Relu", "relu", ["h"], ["y"], output_types=[TensorType((1, 3), F)]),
        ],
        constants={"w": np.ones((4, 3), np.float32)},
    )


def test_tensor_type_properties():
    t = TensorType((2, 3, 4), "float16")
    assert (t.rank, t.size, t.nbytes, str(t)) == (3, 24, 48, "float16[2,3,4]")
    assert TensorType.of(np.zeros((5,), np.int64)) == TensorType((5,), "int64")


def test_graph_queries():
    g = small_graph()
    assert g.type_of("h") == TensorType((1, 3), F)
    assert g.type_of("w") == TensorType((4, 3), F)
    assert set(g.tensor_types()) == {"x", "w", "h", "y"}
    assert g.producers()["y"].name == "relu"
    assert [n.name for n in g.consumers()["h"]] == ["relu"]
    assert g.op_counts() == {"MatMul": 1, "Relu": 1}
    with pytest.raises(KeyError):
        g.type_of("nope")


def test_text_form_is_readable():
    text = format_graph(small_graph())
    assert text.splitlines()[0] == "graph g(x: float32[1,4]) -> (y)"
    assert "const w: float32[4,3]" in text
    assert "h = MatMul(x, w)" in text and "# mm" in text


def test_verify_accepts_good_graph():
    verify(small_graph())


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda g: g.nodes.reverse(), "used before it is defined"),
        (lambda g: setattr(g.nodes[1], "name", "mm"), "used twice"),
        (lambda g: setattr(g.nodes[1], "outputs", ["h"]), "produced twice"),
        (lambda g: setattr(g.nodes[0], "output_types", []), "output types"),
        (lambda g: setattr(g, "outputs", ["zz"]), "not produced"),
        (lambda g: setattr(g.nodes[0], "output_types", [TensorType((1, -1), F)]), "non-static"),
        (lambda g: setattr(g.nodes[0], "output_types", [TensorType((1, 3), "str")]), "dtype"),
    ],
)
def test_verify_explains_what_is_wrong(break_it, message):
    g = small_graph()
    break_it(g)
    with pytest.raises(IRVerifyError, match=message) as info:
        verify(g, after="mypass")
    assert "pass mypass" in str(info.value)
