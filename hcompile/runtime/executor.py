"""The executor: loads an artifact's partitions and runs them in order."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcompile.artifact import Artifact, ParsedManifest, TensorSpec, decode_weight
from hcompile.artifact.archive import DEFAULT_MAX_TOTAL_SIZE
from hcompile.errors import ArtifactError
from hcompile.runtime.cache import default_cache_dir
from hcompile.runtime.inputs import check_inputs
from hcompile.runtime.runners import PartitionRunner, RunnerOptions, choose_code
from hcompile.runtime.tensors import host_ready, to_ffi, to_numpy


@dataclass(frozen=True)
class PartitionInfo:
    """How a partition was loaded: which code, on which device, fallback or not."""

    id: int
    target: str
    device: str
    runs_on: str
    code_format: str
    member: str
    fallback: bool
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    outputs: tuple[str, ...]


class Executor:
    """A loaded artifact. ``run`` is thread-safe; outputs are fresh numpy arrays.

    ``inputs`` / ``outputs`` list :class:`TensorSpec` ``(name, shape, dtype)`` tuples in the
    model's order; ``partitions`` says how each partition was loaded.
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        source: str | None = None,
        verified: ParsedManifest | None = None,
    ) -> None:
        """``verified``: the parsed manifest when ``artifact`` was just verified by
        ``Artifact.read`` (skips hashing the members again); else ``artifact.check()``."""
        parsed = verified if verified is not None else artifact.check()
        self.source = source
        self.inputs: list[TensorSpec] = list(parsed.inputs)
        self.outputs: list[TensorSpec] = list(parsed.outputs)
        # Decide everything and decode every weight before writing or loading any code.
        choices = [choose_code(p) for p in parsed.partitions]
        host_weights = {
            name: host_ready(decode_weight(spec, artifact.members[spec.member], source))
            for name, spec in parsed.weights.items()
        }
        self._weights = {name: to_ffi(array) for name, array in host_weights.items()}
        self._host_weights = host_weights  # the tensors above borrow this memory
        options = RunnerOptions(Path(cache_dir) if cache_dir else default_cache_dir())
        self._steps: list[tuple[PartitionRunner, tuple[str, ...], tuple[str, ...]]] = []
        self.partitions: list[PartitionInfo] = []
        for p, choice in zip(parsed.partitions, choices, strict=True):
            params = [self._weights[n] for n in p.params]
            blob = artifact.members[choice.code.member]
            runner = choice.runner(p, choice.code, blob, params, options)
            self._steps.append((runner, p.inputs, p.outputs))
            self.partitions.append(
                PartitionInfo(
                    id=p.id,
                    target=p.target,
                    device=p.device,
                    runs_on=choice.runner.runs_on,
                    code_format=choice.code.format,
                    member=choice.code.member,
                    fallback=choice.fallback,
                    inputs=p.inputs,
                    params=p.params,
                    outputs=p.outputs,
                )
            )

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; return ``{output name: np.ndarray}`` in the model's output order."""
        arrays = check_inputs(self.inputs, inputs)
        env: dict[str, Any] = dict(self._weights)
        env.update((name, to_ffi(array)) for name, array in arrays.items())
        for runner, names_in, names_out in self._steps:
            results = runner.run([env[n] for n in names_in])
            if len(results) != len(names_out):
                raise ArtifactError(
                    f"partition {runner.partition.id} returned {len(results)} tensors, but the "
                    f"manifest lists {len(names_out)} outputs {list(names_out)}",
                    hint="the artifact is inconsistent; recompile the model",
                    source=self.source,
                )
            env.update(zip(names_out, results, strict=True))
        return {spec.name: self._output(spec, env[spec.name]) for spec in self.outputs}

    def _output(self, spec: TensorSpec, tensor: Any) -> np.ndarray:
        array = to_numpy(tensor)
        if array.shape != spec.shape or array.dtype.name != spec.dtype:
            raise ArtifactError(
                f"output {spec.name!r} came out as {array.dtype.name}{list(array.shape)}, but "
                f"the manifest says {spec.dtype}{list(spec.shape)}",
                hint="the artifact is inconsistent; recompile the model",
                source=self.source,
            )
        return array

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        parts = ", ".join(f"#{p.id} {p.target}->{p.runs_on}" for p in self.partitions)
        return f"Executor(inputs=[{ins}], outputs=[{outs}], partitions=[{parts}])"


def load(
    artifact: str | os.PathLike[str] | Artifact,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
) -> Executor:
    """Verify and load an artifact (a ``.hca`` path or an in-memory :class:`Artifact`).

    ``cache_dir`` overrides where CPU code is unpacked (default: ``$HCOMPILE_CACHE_DIR``,
    ``$XDG_CACHE_HOME/hcompile`` or ``~/.cache/hcompile``); ``max_total_size`` bounds the
    unpacked size of the file (the zip-bomb guard).
    """
    if isinstance(artifact, Artifact):
        return Executor(artifact, cache_dir=cache_dir)
    source = os.fspath(artifact)
    art = Artifact.read(source, max_total_size=max_total_size)
    return Executor(art, cache_dir=cache_dir, source=source, verified=art.parsed())
