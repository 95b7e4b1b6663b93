"""MatMul, Gemm and Einsum against ONNX Runtime."""

from __future__ import annotations

import pytest

from .harness import Const, check_node, rand


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((2, 3, 4), (2, 4, 5)),
        ((2, 1, 3, 4), (5, 4, 6)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4,)),
    ],
)
def test_matmul_shapes(a, b):
    check_node("MatMul", [rand(*a), rand(*b)])


def test_matmul_constant_weight():
    check_node("MatMul", [rand(8, 64), Const(rand(64, 32))], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["int32", "int64", "float64"])
def test_matmul_dtypes(dtype):
    check_node(
        "MatMul", [rand(3, 4, dtype=dtype, low=-5, high=5), rand(4, 2, dtype=dtype, low=-5, high=5)]
    )


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (5,), (3, 5), (1, 5), (3, 1), ()])
def test_gemm(trans_a, trans_b, c_shape):
    a = rand(4, 3) if trans_a else rand(3, 4)
    b = rand(5, 4) if trans_b else rand(4, 5)
    inputs = [a, Const(b)] + ([] if c_shape is None else [rand(*c_shape)])
    check_node("Gemm", inputs, {"transA": trans_a, "transB": trans_b})


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 2.0), (2.0, 0.0), (1.0, -1.0)])
def test_gemm_alpha_beta(alpha, beta):
    check_node("Gemm", [rand(3, 4), rand(4, 5), rand(5)], {"alpha": alpha, "beta": beta})


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        ("ij,jk->ik", [(3, 4), (4, 5)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("ij->ji", [(3, 4)]),
        ("ii->i", [(4, 4)]),
        ("i,i", [(5,), (5,)]),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
        ("ij,jk", [(3, 4), (4, 5)]),
    ],
)
def test_einsum(equation, shapes):
    check_node("Einsum", [rand(*s) for s in shapes], {"equation": equation})
