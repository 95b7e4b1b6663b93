"""Batch sharding at run time: split inputs along the batch axis, gather outputs in order.

A sharded artifact (made by ``hcompile.sharding_compile.compile_sharded``, the CLI's
``--shard-batch``) holds one copy of the model per participating device, compiled for that
device's share of the batch; every tensor of shard ``i`` is named ``<name>@<i>``. Its
manifest's ``inputs``/``outputs`` list those shard-level tensors (so any executor can run
it), and a top-level ``sharding`` object gives the model's own signature::

    "sharding": {"axis": 0, "batch": 8,
                 "inputs":  [{"name": "x", "shape": [8, 784], "dtype": "float32"}],
                 "outputs": [{"name": "y", "shape": [8, 10], "dtype": "float32"}],
                 "shards": [{"target": "cpu",  "batch": 3, "fraction": 0.4},
                            {"target": "fpga", "batch": 5, "fraction": 0.6}]}

The shards share no tensors, so the scheduler runs them at the same time, each on its own
device's worker. Rows ``[start, start + batch)`` of every input go to a shard, in order,
and every output is the concatenation of the shards' outputs along axis 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcompile.artifact.manifest import ParsedManifest, TensorSpec
from hcompile.errors import ArtifactError, UsageError


def shard_name(name: str, index: int) -> str:
    """The name of tensor ``name`` inside shard ``index``."""
    return f"{name}@{index}"


@dataclass(frozen=True)
class Shard:
    target: str
    batch: int
    fraction: float


def parse_shard_spec(text: str) -> dict[str, float] | None:
    """``"auto"`` -> None; ``"cpu=0.4,fpga=0.6"`` -> ``{"cpu": 0.4, "fpga": 0.6}`` (normalised)."""
    text = text.strip()
    if text == "auto":
        return None
    fractions: dict[str, float] = {}
    for part in text.split(","):
        target, sep, value = part.strip().partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not target or not fraction >= 0 or target in fractions:
            raise UsageError(f"bad --shard-batch {text!r} (at {part.strip()!r})",
                             hint="write auto, or TARGET=FRACTION,... e.g. cpu=0.4,fpga=0.6")
        fractions[target.strip()] = fraction
    total = sum(fractions.values())
    if total <= 0:
        raise UsageError(f"--shard-batch {text!r}: the fractions add up to 0",
                         hint="give at least one device a positive fraction")
    return {t: f / total for t, f in fractions.items()}


def split_batch(batch: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Rows per device: proportional to ``fractions``, largest remainders rounded up."""
    exact = {t: batch * f for t, f in fractions.items()}
    rows = {t: int(e) for t, e in exact.items()}
    by_remainder = sorted(exact, key=lambda t: (-(exact[t] - rows[t]), list(exact).index(t)))
    for t in by_remainder[: batch - sum(rows.values())]:
        rows[t] += 1
    return rows


class Sharding:
    """The model-level signature of a sharded artifact and how to split and gather."""

    def __init__(self, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 shards: list[Shard], batch: int) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.shards = shards
        self.batch = batch
        self.bounds = []
        start = 0
        for shard in shards:
            self.bounds.append((start, start + shard.batch))
            start += shard.batch

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], parsed: ParsedManifest,
                      source: str | None = None) -> Sharding | None:
        """The manifest's ``sharding``, checked against its shard-level signature; or None."""
        data = manifest.get("sharding")
        if data is None:
            return None

        def bad(problem: str) -> ArtifactError:
            return ArtifactError(f"the artifact's sharding is invalid: {problem}",
                                 hint="recompile the model with --shard-batch", source=source)

        try:
            batch = int(data["batch"])
            if int(data.get("axis", 0)) != 0:
                raise bad("only axis 0 is supported")
            shards = [Shard(str(s["target"]), int(s["batch"]), float(s.get("fraction", 0)))
                      for s in data["shards"]]
            inputs = [TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]),
                                 str(t["dtype"])) for t in data["inputs"]]
            outputs = [TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]),
                                  str(t["dtype"])) for t in data["outputs"]]
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"{type(e).__name__}: {e}") from None
        if not shards or sum(s.batch for s in shards) != batch or min(s.batch for s in shards) < 1:
            raise bad(f"shard batches {[s.batch for s in shards]} do not add up to {batch}")
        have = {s.name: s for s in (*parsed.inputs, *parsed.outputs)}
        for spec in (*inputs, *outputs):
            if not spec.shape or spec.shape[0] != batch:
                raise bad(f"{spec.name} has shape {spec.shape}, not batch {batch} first")
            for i, shard in enumerate(shards):
                inner = have.get(shard_name(spec.name, i))
                want = (shard.batch, *spec.shape[1:])
                if inner is None or inner.shape != want or inner.dtype != spec.dtype:
                    raise bad(f"shard {i} has no tensor {shard_name(spec.name, i)} of "
                              f"{spec.dtype}{list(want)}")
        return cls(inputs, outputs, shards, batch)

    def split(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Model inputs -> shard inputs (views; the executor aligns them)."""
        return {shard_name(name, i): value[start:end]
                for name, value in arrays.items()
                for i, (start, end) in enumerate(self.bounds)}

    def gather(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Shard outputs -> model outputs, concatenated in shard order."""
        return {spec.name: np.concatenate([outputs[shard_name(spec.name, i)]
                                           for i in range(len(self.shards))], axis=0)
                for spec in self.outputs}

    def describe(self) -> str:
        return ", ".join(f"{s.target} {s.batch}/{self.batch} rows" for s in self.shards)
