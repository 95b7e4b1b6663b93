"""Elementwise arithmetic, comparisons and logic against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import Const, check_graph, check_node, node, rand

BROADCASTS = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 1, 4), (3, 1)),
    ((5,), ()),
]


def _nonzero(*shape: int, dtype: str) -> np.ndarray:
    values = rand(*shape, dtype=dtype, low=1, high=9)
    sign = np.where(rand(*shape, dtype="bool"), 1, -1).astype(dtype)
    return np.asarray(values * sign, dtype=dtype)


@pytest.mark.parametrize(("a_shape", "b_shape"), BROADCASTS)
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_binary_arithmetic(a_shape, b_shape, dtype):
    a = rand(*a_shape, dtype=dtype, low=-9, high=9)
    b = _nonzero(*b_shape, dtype=dtype)
    ops = ["Add", "Sub", "Mul", "Div"]
    nodes = [node(op, ["a", "b"], op) for op in ops]
    check_graph(nodes, {"a": a, "b": b}, ops)


def test_binary_with_constant_and_float64():
    a = rand(3, 4, dtype="float64")
    nodes = [node("Mul", ["a", "c"], "m"), node("Sub", ["c", "a"], "s")]
    check_graph(nodes, {"a": a, "c": Const(rand(4, dtype="float64"))}, ["m", "s"])


@pytest.mark.parametrize(
    ("base", "exponent"),
    [
        (rand(2, 3, low=0.1, high=3), rand(2, 3, low=-2, high=2)),
        (rand(2, 3, low=0.1, high=3), rand(3, low=-2, high=2)),
        (rand(2, 3), rand(3, dtype="int64", low=0, high=4)),  # mixed dtypes (opset 12)
        (rand(2, 3, dtype="int32", low=-3, high=4), rand(2, 3, dtype="int32", low=0, high=4)),
        (rand(4, dtype="int64", low=-5, high=6), np.array(3, dtype="int64")),
    ],
)
def test_pow(base, exponent):
    check_node("Pow", [base, exponent])


@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0, 3.0])
def test_pow_constant_exponent(exponent):
    check_node("Pow", [rand(2, 5, low=0.1, high=3), Const(np.array(exponent, np.float32))])


def test_pow_constant_exponent_broadcasts_base():
    check_node("Pow", [rand(3, low=0.1, high=3), Const(np.full((2, 3), 2.0, np.float32))])


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_mod_integer(dtype):
    a = rand(3, 4, dtype=dtype, low=-20, high=20)
    b = _nonzero(4, dtype=dtype)
    nodes = [node("Mod", ["a", "b"], "floor"), node("Mod", ["a", "b"], "trunc", fmod=1)]
    check_graph(nodes, {"a": a, "b": b}, ["floor", "trunc"])


def test_mod_float():
    a, b = rand(3, 4, low=-9, high=9), _nonzero(3, 4, dtype="float32")
    check_node("Mod", [a, b], {"fmod": 1})


UNARY_DOMAINS = {
    (-3.0, 3.0): ["Abs", "Neg", "Exp", "Floor", "Ceil", "Sign", "Erf", "Sigmoid", "Tanh", "Sin",
                  "Cos", "Atan", "Sinh", "Cosh", "Asinh", "Relu", "Softsign", "Softplus"],
    (0.1, 5.0): ["Log", "Sqrt", "Reciprocal", "Tan"],
    (-0.95, 0.95): ["Asin", "Acos", "Atanh"],
    (1.0, 5.0): ["Acosh"],
}  # fmt: skip


@pytest.mark.parametrize("domain", list(UNARY_DOMAINS))
def test_unary_float(domain):
    ops = UNARY_DOMAINS[domain]
    x = rand(3, 17, low=domain[0], high=domain[1])
    check_graph([node(op, ["x"], op) for op in ops], {"x": x}, ops)


def test_unary_float64():
    # the ops ONNX Runtime implements for double
    ops = ["Abs", "Neg", "Exp", "Log", "Sqrt", "Floor", "Ceil", "Sigmoid", "Tanh", "Reciprocal"]
    x = rand(3, 17, dtype="float64", low=0.1, high=3)
    check_graph([node(op, ["x"], op) for op in ops], {"x": x}, ops)


def test_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6, -2.6, 0.0], np.float32)
    check_node("Round", [x])


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_unary_integer(dtype):
    ops = ["Abs", "Neg", "Sign"] + (["Relu"] if dtype != "int64" else [])
    x = rand(4, 6, dtype=dtype, low=-50, high=50)
    check_graph([node(op, ["x"], op) for op in ops], {"x": x}, ops)


def test_isnan_isinf():
    x = np.array([1.0, np.nan, np.inf, -np.inf, -2.0, 0.0], np.float32)
    nodes = [
        node("IsNaN", ["x"], "nan"),
        node("IsInf", ["x"], "inf"),
        node("IsInf", ["x"], "pos", detect_negative=0),
        node("IsInf", ["x"], "neg", detect_positive=0),
    ]
    check_graph(nodes, {"x": x}, ["nan", "inf", "pos", "neg"])


@pytest.mark.parametrize("count", [1, 2, 3])
def test_variadic(count):
    shapes = [(2, 3, 4), (3, 1), (4,)][:count]
    inputs = {f"x{i}": rand(*s) for i, s in enumerate(shapes)}
    ops = ["Max", "Min", "Sum", "Mean"]
    check_graph([node(op, list(inputs), op) for op in ops], inputs, ops)


def test_variadic_integer():
    inputs = {
        "a": rand(2, 3, dtype="int32", low=-9, high=9),
        "b": rand(3, dtype="int32", low=-9, high=9),
    }
    ops = ["Max", "Min"]  # ONNX Runtime has no integer Sum
    check_graph([node(op, ["a", "b"], op) for op in ops], inputs, ops)


def test_bitwise():
    a, b = rand(3, 4, dtype="int32", low=-100, high=100), rand(4, dtype="int32", low=-100, high=100)
    ops = ["BitwiseAnd", "BitwiseOr", "BitwiseXor"]
    nodes = [node(op, ["a", "b"], op) for op in ops] + [node("BitwiseNot", ["a"], "not")]
    check_graph(nodes, {"a": a, "b": b}, [*ops, "not"], opset=18)


@pytest.mark.parametrize(("a_shape", "b_shape"), BROADCASTS[:4])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_comparisons(a_shape, b_shape, dtype):
    a = rand(*a_shape, dtype=dtype, low=-3, high=3)
    b = rand(*b_shape, dtype=dtype, low=-3, high=3)
    ops = ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"]
    check_graph([node(op, ["a", "b"], op) for op in ops], {"a": a, "b": b}, ops)


def test_logic():
    a, b = rand(2, 3, 4, dtype="bool"), rand(3, 1, dtype="bool")
    ops = ["And", "Or", "Xor"]
    nodes = [node(op, ["a", "b"], op) for op in ops] + [node("Not", ["a"], "Not")]
    check_graph(nodes, {"a": a, "b": b}, [*ops, "Not"])


@pytest.mark.parametrize(
    "shapes", [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()), ((4,), (2, 1, 4), (4,))]
)
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_where(shapes, dtype):
    cond = rand(*shapes[0], dtype="bool")
    x, y = (
        rand(*shapes[1], dtype=dtype, low=-9, high=9),
        rand(*shapes[2], dtype=dtype, low=-9, high=9),
    )
    check_node("Where", [cond, x, y])
