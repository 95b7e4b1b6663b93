"""``hcompile.backend.Backend``: ONNX's backend interface, so ONNX's test suites run hcompile.

    from hcompile.backend import Backend
    rep = Backend.prepare(model)            # compiles for the CPU target
    outputs = rep.run([x])                  # list of numpy arrays, in the model's output order

A model with symbolic input dims is compiled on first ``run`` for the shapes it is given, and
recompiled (and cached) when later runs bring other shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend as OnnxBackend
from onnx.backend.base import BackendRep, Device, DeviceType

from hcompile.errors import InputError, UsageError


class HcompileRep(BackendRep):
    """A prepared model: compiles per input-shape signature, runs through the hcompile runtime."""

    def __init__(self, model: onnx.ModelProto, targets: Sequence[str]) -> None:
        self.model = model
        self.targets = list(targets)
        inits = {i.name for i in model.graph.initializer}
        self.input_names = [v.name for v in model.graph.input if v.name not in inits]
        self.output_names = [v.name for v in model.graph.output]
        self._executors: dict[tuple[Any, ...], Any] = {}
        self._frozen: dict[tuple[Any, ...], tuple[str, ...]] = {}  # shape key -> frozen inputs

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        feeds = self._feeds(inputs)
        shape_key = _shape_key(feeds)
        frozen_names = self._frozen.get(shape_key, ())
        key = shape_key + tuple(feeds[n].tobytes() for n in frozen_names)
        if key not in self._executors:
            self._compile(feeds, frozen_names)
            frozen_names = self._frozen[shape_key]
            key = shape_key + tuple(feeds[n].tobytes() for n in frozen_names)
        executor = self._executors[key]
        run_feeds = {n: a for n, a in feeds.items() if n not in frozen_names}
        outputs = executor.run(run_feeds)
        return tuple(outputs[name] for name in self.output_names)

    def _compile(self, feeds: dict[str, np.ndarray], frozen_names: Sequence[str]) -> None:
        """Compile for these shapes; inputs that must be compile-time constants (axes, sizes,
        k...) are frozen to the values given, and later runs recompile when those change."""
        import hcompile
        from hcompile.errors import DynamicShapeError

        frozen = {n: feeds[n] for n in frozen_names}
        shapes = {n: a.shape for n, a in feeds.items() if n not in frozen}
        try:
            artifact = hcompile.compile(self.model, targets=self.targets, input_shapes=shapes,
                                        frozen_inputs=frozen)
        except DynamicShapeError as err:
            extra = self._to_freeze(err.needed_static, feeds, frozen)
            if not extra:
                raise
            self._compile(feeds, (*frozen_names, *extra))
            return
        shape_key = _shape_key(feeds)
        self._frozen[shape_key] = tuple(frozen_names)
        key = shape_key + tuple(feeds[n].tobytes() for n in frozen_names)
        self._executors[key] = hcompile.load(artifact)

    def _to_freeze(self, needed: Sequence[str], feeds: Mapping[str, np.ndarray],
                   frozen: Mapping[str, np.ndarray]) -> list[str]:
        """The model inputs to freeze so that the tensors in ``needed`` become constants: those
        named, else the inputs they are computed from, else every integer input (shape-like)."""
        open_inputs = [n for n in feeds if n not in frozen]
        named = [n for n in needed if n in open_inputs]
        if named:
            return named
        producers = {out: node for node in self.model.graph.node for out in node.output}
        found: list[str] = []
        stack, seen = list(needed), set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in open_inputs:
                found.append(name)
            elif name in producers:
                stack.extend(i for i in producers[name].input if i)
        if found:
            return found
        return [n for n in open_inputs if feeds[n].dtype.kind in "iu"]

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            return {k: _array(v) for k, v in inputs.items()}
        if isinstance(inputs, np.ndarray | onnx.TensorProto):
            inputs = [inputs]
        values = list(inputs)
        if len(values) > len(self.input_names):
            raise InputError(f"{len(values)} inputs given, the model takes "
                             f"{len(self.input_names)}: {', '.join(self.input_names)}")
        return {name: _array(v) for name, v in zip(self.input_names, values, strict=False)}


def _array(value: Any) -> np.ndarray:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def _shape_key(feeds: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
    return tuple((n, a.shape, a.dtype.str) for n, a in feeds.items())


class Backend(OnnxBackend):
    """hcompile as an ONNX backend (CPU target)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> HcompileRep:
        if not cls.supports_device(device):
            raise UsageError(f"hcompile's ONNX backend runs on CPU, not {device}")
        super().prepare(model, device, **kwargs)
        return HcompileRep(model, targets=kwargs.get("targets", ["cpu"]))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = Backend.prepare
run_model = Backend.run_model
supports_device = Backend.supports_device
