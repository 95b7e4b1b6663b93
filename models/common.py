"""Shared helpers for the zoo: seeded initialisation, ONNX export and the reference record."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17
"""ONNX opset every zoo model is exported with."""

EXPORT_BATCH = 2
"""Batch size of the example input used for tracing (the batch dim stays symbolic)."""

VERIFY_BATCH = 3
"""Batch size for verification; differs from EXPORT_BATCH to exercise the symbolic batch dim."""


@dataclass(frozen=True)
class Reference:
    """One input and the output the source framework computed for it."""

    x: np.ndarray
    y: np.ndarray


def seeded_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Return a float32 standard-normal array from numpy's RandomState(seed)."""
    return np.random.RandomState(seed).standard_normal(shape).astype(np.float32)


def init_conv_bn(model: nn.Module, gen: torch.Generator, gain: float = 1.0) -> None:
    """Initialise every Conv2d/BatchNorm2d/Linear in `model` from `gen`.

    Convs get Kaiming-normal weights (fan_in, ReLU gain) times `gain`; BatchNorm gets random but
    sane statistics (weight in [0.5, 1.5], bias and running_mean in [-0.1, 0.1], running_var in
    [0.5, 1.5]) so inference-mode outputs are O(1) and the BN nodes are not identities; Linear
    layers get PyTorch's default-style uniform(+-1/sqrt(fan_in)) weights and biases.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
                std = gain * (2.0 / fan_in) ** 0.5
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * std)
                if mod.bias is not None:
                    mod.bias.copy_(torch.empty(mod.bias.shape).uniform_(-0.1, 0.1, generator=gen))
            elif isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                assert mod.running_mean is not None and mod.running_var is not None
                mod.weight.copy_(torch.empty(n).uniform_(0.5, 1.5, generator=gen))
                mod.bias.copy_(torch.empty(n).uniform_(-0.1, 0.1, generator=gen))
                mod.running_mean.copy_(torch.empty(n).uniform_(-0.1, 0.1, generator=gen))
                mod.running_var.copy_(torch.empty(n).uniform_(0.5, 1.5, generator=gen))
            elif isinstance(mod, nn.Linear):
                bound = (1.0 / mod.in_features) ** 0.5
                mod.weight.copy_(
                    torch.empty(mod.weight.shape).uniform_(-bound, bound, generator=gen)
                )
                if mod.bias is not None:
                    mod.bias.copy_(
                        torch.empty(mod.bias.shape).uniform_(-bound, bound, generator=gen)
                    )


def export_torch(
    model: nn.Module,
    x_shape: tuple[int, ...],
    path: Path,
    seed: int,
    *,
    fold_constants: bool = True,
) -> Reference:
    """Export `model` (in eval mode) to `path` with the TorchScript exporter; return a reference.

    The input is named "x" and the output "y", both with a symbolic leading dim "batch". The
    reference pairs a VERIFY_BATCH-sized input with torch's output for it. `fold_constants=False`
    keeps BatchNormalization nodes instead of letting the exporter fold them into the Conv before.
    """
    model.eval()
    example = torch.from_numpy(seeded_input((EXPORT_BATCH, *x_shape), seed))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # The native transformer fast path (taken in eval mode without grad) traces to a fused aten op
    # the exporter cannot translate; switch it off so plain MatMul/Softmax/LayerNorm get exported.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                do_constant_folding=fold_constants,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    x = seeded_input((VERIFY_BATCH, *x_shape), seed + 1)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    return Reference(x=x, y=y)
