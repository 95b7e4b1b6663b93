"""Blocked (NCHW[x]c) convs on the CPU: the layout pass, their schedule, and results against
ONNX Runtime for the shapes that exercise the block choice (odd channel counts included)."""

from __future__ import annotations

import pytest
import tvm
from tvm import relax

from hcompile.targets.llvm_cpu.layout import BlockedLayout, channel_block, channel_blocking
from hcompile.targets.llvm_cpu.schedules import CPUFeatures, ScheduleCPU
from hcompile.targets.llvm_cpu.schedules.conv import conv_tile, register_tile
from tests.ops.harness import Const, check_graph, node, rand

AVX512 = CPUFeatures(vector_bits=512, vector_registers=32, cores=2)
ATOL = 2e-4  # fp32 sums of a few hundred products, in another order than ONNX Runtime's


def test_channel_block_is_a_power_of_two_dividing_the_channels():
    assert [channel_block(c, 16) for c in (3, 6, 24, 32, 96, 144, 1280)] == \
        [1, 2, 8, 16, 16, 16, 16]
    assert channel_block(64, 8) == 8


def test_channels_beyond_one_vector_are_padded_to_whole_vectors():
    assert [channel_blocking(c, 16) for c in (3, 8, 16, 17, 24, 40, 144)] == \
        [(1, 3), (8, 8), (16, 16), (16, 32), (16, 32), (16, 48), (16, 144)]
    assert channel_blocking(24, 8) == (8, 24)


def test_conv_tile_takes_two_output_blocks_where_they_share_broadcasts():
    assert conv_tile(7, 32, 16, AVX512) == (7, 2)  # resnet18's last stage
    assert conv_tile(56, 4, 16, AVX512) == (8, 2)  # 16 accumulators at most
    assert conv_tile(14, 6, 16, AVX512) == (7, 2)
    assert conv_tile(56, 3, 16, AVX512) == (28, 1)  # an odd number of blocks
    assert conv_tile(112, 4, 3, AVX512) == (28, 1)  # the RGB input conv
    assert conv_tile(14, 6, 16, AVX512, depthwise=True) == (14, 1)
    assert conv_tile(14, 6, 16, CPUFeatures(vector_bits=256, vector_registers=16)) == (14, 1)


def test_register_tile_fills_the_register_file():
    assert register_tile(56, 1, AVX512) == 28  # 30 accumulators at most, a divisor of 56
    assert register_tile(7, 1, AVX512) == 7
    assert register_tile(56, 2, AVX512) == 14
    assert register_tile(61, 1, AVX512) == 30  # prime width: a full tile and a tail check


def _block_module() -> tvm.IRModule:
    """conv 3x3 -> bias -> relu -> depthwise 3x3 stride 2 -> 1x1 conv + residual."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 32, 16, 16], "float32"))
    w1 = relax.Var("w1", relax.TensorType([32, 32, 3, 3], "float32"))
    b1 = relax.Var("b1", relax.TensorType([1, 32, 1, 1], "float32"))
    wd = relax.Var("wd", relax.TensorType([32, 1, 3, 3], "float32"))
    w2 = relax.Var("w2", relax.TensorType([32, 32, 1, 1], "float32"))
    with bb.function("main", [x, w1, b1, wd, w2], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, w1, padding=1))
            y = bb.emit(relax.op.nn.relu(relax.op.add(y, b1)))
            d = bb.emit(relax.op.nn.conv2d(y, wd, strides=2, padding=1, groups=32))
            p = bb.emit(relax.op.nn.conv2d(d, w2))
            out = bb.emit_output(relax.op.add(p, d))
        bb.emit_func_output(out)
    return bb.get()


def _scheduled_module(module: tvm.IRModule) -> tvm.IRModule:
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

    target = tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2})
    with target:
        passes = [BlockedLayout(16), *cpu_generic.legalize_passes(target), ScheduleCPU(AVX512)]
        return tvm.transform.Sequential(passes)(module)


def _scheduled(module: tvm.IRModule) -> dict[str, str]:
    return {gvar.name_hint: func.script()
            for gvar, func in _scheduled_module(module).functions_items()}


def test_convs_become_blocked_and_the_layout_stays_blocked_between_them():
    funcs = _scheduled(_block_module())
    main = funcs["main"]
    # Layout changes: the input, the 4 weights (bias included), the output. The three convs
    # exchange blocked tensors (bias, relu and residual add fused into them on the way).
    assert main.count("R.call_tir(te_layout_transform") == 6, main
    names = " ".join(funcs)
    assert "conv2d_nchwc" in names and "depthwise_nchwc" in names


def test_blocked_conv_schedule_keeps_a_register_tile_of_vectors():
    funcs = _scheduled(_block_module())
    convs = {name: text for name, text in funcs.items()
             if "conv2d_nchwc" in name or "depthwise_nchwc" in name}
    assert len(convs) == 3, list(funcs)
    for name, text in convs.items():
        assert 'T.sblock("conv2d_nchwc_update")' in text or \
            'T.sblock("depthwise_nchwc_update")' in text, name
        assert 'scope="local"' in text, name  # accumulators, not the output buffer
        assert "T.vectorized(T.int64(16))" in text and "T.unroll(" in text, name


def test_the_relu_epilogue_is_written_from_the_accumulators():
    funcs = _scheduled(_block_module())
    fused = next(text for name, text in funcs.items() if "conv2d_nchwc" in name and "relu" in name)
    # One pass over the output: no separate loop nest for the bias and relu.
    assert fused.count("T.parallel") <= 2, fused  # the padded copy and the conv


def test_weight_packing_is_lifted_out_of_main():
    from hcompile.targets.llvm_cpu.layout import layout_passes

    module = tvm.transform.Sequential(layout_passes(AVX512))(_block_module())
    assert "main_transform_params" in [g.name_hint for g, _ in module.functions_items()]
    params = module["main"].params
    assert [int(d) for d in params[1].ty.shape] == [2, 2, 3, 3, 16, 16]



def _single_conv_module(channels: int, groups: int, size: int, kernel: int) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, channels, size, size], "float32"))
    w = relax.Var("w", relax.TensorType([channels, channels // groups, kernel, kernel],
                                        "float32"))
    with bb.function("main", [x, w], attrs={"num_input": 1}):
        with bb.dataflow():
            out = bb.emit_output(relax.op.nn.conv2d(x, w, padding=kernel // 2, groups=groups))
        bb.emit_func_output(out)
    return bb.get()


def _conv_is_parallel(module: tvm.IRModule) -> bool:
    (conv,) = [text for name, text in _scheduled(module).items() if "_nchwc" in name]
    return "T.parallel" in conv


def test_a_depthwise_conv_goes_parallel_at_fewer_multiply_adds_than_a_dense_one():
    # 2.4M multiply-adds each (between a half and all of CONV_PARALLEL_MIN_WORK): the
    # depthwise one loads a vector per multiply-add and is worth the pool's wake-up.
    depthwise = _single_conv_module(channels=64, groups=64, size=64, kernel=3)
    dense = _single_conv_module(channels=16, groups=1, size=96, kernel=1)
    assert _conv_is_parallel(depthwise)
    assert not _conv_is_parallel(dense)
    # Well below the threshold even counted twice: one core.
    assert not _conv_is_parallel(_single_conv_module(channels=16, groups=16, size=32, kernel=3))

# Against ONNX Runtime through the public API: Conv -> BatchNorm -> Relu -> Add chains.
CASES = {
    "3x3_pad_odd_in": dict(c=3, k=40, hw=13, kernel=3, pads=[1, 1, 1, 1]),
    "7x7_stride2": dict(c=3, k=16, hw=23, kernel=7, strides=[2, 2], pads=[3, 3, 3, 3]),
    "1x1_pointwise_24": dict(c=20, k=24, hw=9, kernel=1),
    "1x1_stride2": dict(c=32, k=48, hw=10, kernel=1, strides=[2, 2]),
    "dilated_asym_pads": dict(c=16, k=32, hw=12, kernel=3, dilations=[2, 2], pads=[0, 1, 2, 1]),
    "odd_out_channels": dict(c=17, k=33, hw=8, kernel=3, pads=[1, 1, 1, 1]),
    "grouped": dict(c=32, k=48, hw=8, kernel=3, group=2, pads=[1, 1, 1, 1]),
    "depthwise_24": dict(c=24, k=24, hw=15, kernel=3, group=24, pads=[1, 1, 1, 1]),
    "depthwise_stride2": dict(c=48, k=48, hw=14, kernel=3, group=48, strides=[2, 2],
                              pads=[1, 1, 1, 1]),
    "depthwise_5x5_odd_width": dict(c=32, k=32, hw=11, kernel=5, group=32, pads=[2, 2, 2, 2]),
}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_conv_bn_relu_residual_matches_onnxruntime(case, batch):
    cfg = dict(CASES[case])
    c, k, hw, kernel = cfg.pop("c"), cfg.pop("k"), cfg.pop("hw"), cfg.pop("kernel")
    group = cfg.get("group", 1)
    inputs = {
        "x": rand(batch, c, hw, hw),
        "w": Const(rand(k, c // group, kernel, kernel, low=-0.5, high=0.5)),
        "b": Const(rand(k)),
        "scale": Const(rand(k)), "shift": Const(rand(k)),
        "mean": Const(rand(k)), "var": Const(rand(k, low=0.5, high=2.0)),
    }
    nodes = [node("Conv", ["x", "w", "b"], "y", **cfg),
             node("BatchNormalization", ["y", "scale", "shift", "mean", "var"], "n"),
             node("Relu", ["n"], "r"),
             node("Add", ["r", "y"], "out")]  # a residual that reads the conv output twice
    check_graph(nodes, inputs, ["out"], atol=ATOL, rtol=1e-4, via="hcompile")


def test_a_24_channel_conv_runs_on_32_padded_channels():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 32, 8, 8], "float32"))
    w = relax.Var("w", relax.TensorType([24, 32, 1, 1], "float32"))
    with bb.function("main", [x, w], attrs={"num_input": 1}):
        with bb.dataflow():
            out = bb.emit_output(relax.op.nn.relu(relax.op.nn.conv2d(x, w)))
        bb.emit_func_output(out)
    main = _scheduled(bb.get())["main"]
    assert "R.Tensor((1, 2, 8, 8, 16)" in main  # 24 channels as 2 blocks of 16
    assert "call_tir(strided_slice" in main and "(1, 24, 8, 8)" in main  # padding cut off


def test_padded_channels_through_sigmoid_divide_and_depthwise_match_onnxruntime():
    """24 channels run as 32 (zero padding): sigmoid makes the padding 0.5, a per-channel
    divisor is padded with ones, the depthwise and 1x1 convs that follow must ignore it."""
    inputs = {"x": rand(1, 24, 9, 9), "w1": Const(rand(24, 24, 3, 3, low=-0.3, high=0.3)),
              "d": Const(rand(1, 24, 1, 1, low=0.5, high=2.0)),
              "wd": Const(rand(24, 1, 3, 3, low=-0.5, high=0.5)),
              "w2": Const(rand(40, 24, 1, 1, low=-0.5, high=0.5))}
    nodes = [node("Conv", ["x", "w1"], "y", pads=[1, 1, 1, 1]),
             node("Sigmoid", ["y"], "s"),
             node("Div", ["s", "d"], "q"),
             node("Conv", ["q", "wd"], "dw", group=24, pads=[1, 1, 1, 1]),
             node("Add", ["dw", "q"], "r"),
             node("Conv", ["r", "w2"], "out")]
    check_graph(nodes, inputs, ["out", "r"], atol=ATOL, rtol=1e-4, via="hcompile")


def test_two_blocked_convs_in_a_row_match_onnxruntime():
    inputs = {"x": rand(1, 16, 10, 10), "w1": Const(rand(32, 16, 3, 3, low=-0.3, high=0.3)),
              "w2": Const(rand(32, 32, 3, 3, low=-0.3, high=0.3)), "b2": Const(rand(32))}
    nodes = [node("Conv", ["x", "w1"], "y", pads=[1, 1, 1, 1]),
             node("Relu", ["y"], "r"),
             node("Conv", ["r", "w2", "b2"], "z", strides=[2, 2], pads=[1, 1, 1, 1]),
             node("MaxPool", ["z"], "out", kernel_shape=[2, 2], strides=[2, 2])]
    check_graph(nodes, inputs, ["out"], atol=ATOL, rtol=1e-4, via="hcompile")




def test_blocked_conv_compiles_to_broadcast_fmas_on_vector_registers():
    """The machine code of the scheduled conv (built for AVX-512, not run): the inner loop is
    FMAs on zmm registers; each input scalar is broadcast once for the tile's two output
    channel blocks (conv_tile), so there are twice as many FMAs as broadcasts, all on
    registers (none spilled to memory operands)."""
    target = tvm.target.Target({"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2})
    module = _scheduled_module(_block_module())
    conv = next(func for gvar, func in module.functions_items()
                if gvar.name_hint == "fused_conv2d_nchwc_add_relu")
    lib = tvm.compile(tvm.IRModule({"main": conv.with_attr("global_symbol", "main")}), target)
    asm = lib.mod.inspect_source("asm")
    fmas = [line for line in asm.splitlines() if "vfmadd" in line and "zmm" in line]
    broadcasts = [line for line in asm.splitlines() if "vbroadcastss" in line and "zmm" in line]
    assert len(fmas) >= 16, asm[:2000]
    assert len(fmas) == 2 * len(broadcasts), (len(fmas), len(broadcasts))
    assert not any("(%" in line for line in fmas), fmas


@pytest.mark.parametrize("pool", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1],
                     "count_include_pad": 1}),
], ids=["max_pad", "max_ceil", "avg_pad", "avg_count_pad"])
def test_pool_of_a_blocked_conv_matches_onnxruntime(pool):
    op, attrs = pool
    inputs = {"x": rand(1, 5, 13, 13), "w": Const(rand(24, 5, 3, 3, low=-0.5, high=0.5))}
    nodes = [node("Conv", ["x", "w"], "y", pads=[1, 1, 1, 1]),
             node(op, ["y"], "out", **attrs)]
    check_graph(nodes, inputs, ["out"], atol=ATOL, rtol=1e-4, via="hcompile")


def test_a_padded_pool_reads_through_the_border_test_without_a_padded_copy():
    # The copy (with -inf borders) cost more than the pool: resnet18's at batch 1 took 81 us
    # with it and 33 us without.
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([1, 32, 16, 16], "float32"))
    w = relax.Var("w", relax.TensorType([32, 32, 3, 3], "float32"))
    with bb.function("main", [x, w], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, w, padding=1))
            y = bb.emit(relax.op.nn.max_pool2d(y, pool_size=3, strides=2, padding=1))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    funcs = _scheduled(bb.get())
    (pool,) = [text for name, text in funcs.items() if "max_pool" in name]
    assert "pool_max_update" in pool and "if_then_else" in pool, pool
    assert "pad_temp" not in pool, pool


def test_blocked_conv_outputs_feeding_concat_and_global_pool_match_onnxruntime():
    inputs = {"x": rand(1, 8, 9, 9), "w1": Const(rand(16, 8, 3, 3, low=-0.5, high=0.5)),
              "w2": Const(rand(32, 8, 1, 1, low=-0.5, high=0.5))}
    nodes = [node("Conv", ["x", "w1"], "a", pads=[1, 1, 1, 1]),
             node("Conv", ["x", "w2"], "b"),
             node("Concat", ["a", "b"], "c", axis=1),
             node("GlobalAveragePool", ["c"], "out")]
    check_graph(nodes, inputs, ["out"], atol=ATOL, rtol=1e-4, via="hcompile")
