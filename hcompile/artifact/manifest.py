"""The artifact manifest: constants, typed views and the structural check.

The manifest is kept as a plain ``dict`` (it is JSON, and the plan inside it is opaque
here); :func:`parse_manifest` checks its structure and returns typed, read-only views
(:class:`ParsedManifest`) that the runtime and ``describe`` work from. Every problem is an
:class:`~hcompile.errors.ArtifactError` naming the manifest field, e.g.
``manifest.partitions[1].code[0].member``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from hcompile.errors import ArtifactError
from hcompile.ir.types import NARROW_STORAGE

FORMAT_NAME = "hcompile-artifact"
#: the newest manifest layout this hcompile reads and the one it writes
FORMAT_VERSION = 1
MANIFEST_MEMBER = "manifest.json"

#: dtypes an artifact may declare for inputs, outputs and weights (numpy and ml_dtypes names;
#: the narrow ones travel as their integer storage, hcompile.ir.types.NARROW_STORAGE)
DTYPES = frozenset({
    "bool", "float16", "float32", "float64",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    *NARROW_STORAGE,
})  # fmt: skip

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TensorSpec(NamedTuple):
    """A tensor in the model's signature or a weight: unpacks as ``(name, shape, dtype)``."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class CodeSpec:
    """One piece of code for a partition: ``format`` selects the runner that loads it."""

    format: str
    member: str
    entry: str
    #: any further fields (launch plans, architectures...), for the runner of this format
    extra: Mapping[str, Any]


@dataclass(frozen=True)
class WeightSpec:
    name: str
    member: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class PartitionSpec:
    """A partition: call ``code``'s entry with ``(*inputs, *params)``, get one tensor per output."""

    id: int
    target: str
    device: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    outputs: tuple[str, ...]
    code: tuple[CodeSpec, ...]
    fallback: CodeSpec | None


@dataclass(frozen=True)
class ParsedManifest:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    weights: Mapping[str, WeightSpec]
    partitions: tuple[PartitionSpec, ...]


def _fail(where: str, problem: str) -> ArtifactError:
    return ArtifactError(
        f"the artifact manifest is invalid: {where} {problem}",
        hint="the artifact is corrupt or was not written by hcompile; recompile the model",
    )


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise _fail(f"{where}.{key}", "is missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(f"{where}.{key}", f"should be a {names}, not {type(value).__name__}")
    return value


def _shape(obj: Mapping[str, Any], where: str) -> tuple[int, ...]:
    dims = _field(obj, "shape", list, where)
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise _fail(f"{where}.shape", f"should list non-negative ints, got {dims!r}")
    return tuple(dims)


def _dtype(obj: Mapping[str, Any], where: str) -> str:
    dtype = _field(obj, "dtype", str, where)
    if dtype not in DTYPES:
        raise _fail(f"{where}.dtype", f"is {dtype!r}; supported: {', '.join(sorted(DTYPES))}")
    return str(dtype)


def _names(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    names = _field(obj, key, list, where)
    if not all(isinstance(n, str) and n for n in names):
        raise _fail(f"{where}.{key}", f"should list non-empty strings, got {names!r}")
    return tuple(names)


def _tensors(manifest: Mapping[str, Any], key: str) -> tuple[TensorSpec, ...]:
    specs = []
    for i, item in enumerate(_field(manifest, key, list, "manifest")):
        where = f"manifest.{key}[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, "should be an object")
        name = _field(item, "name", str, where)
        specs.append(TensorSpec(name, _shape(item, where), _dtype(item, where)))
    seen = [s.name for s in specs]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise _fail(f"manifest.{key}", f"names {dupes} more than once")
    return tuple(specs)


def _code(item: Any, where: str) -> CodeSpec:
    if not isinstance(item, dict):
        raise _fail(where, "should be an object")
    known = ("format", "member", "entry")
    return CodeSpec(
        format=_field(item, "format", str, where),
        member=_field(item, "member", str, where),
        entry=_field(item, "entry", str, where),
        extra={k: v for k, v in item.items() if k not in known},
    )


def _partition(item: Any, where: str) -> PartitionSpec:
    if not isinstance(item, dict):
        raise _fail(where, "should be an object")
    code = _field(item, "code", list, where)
    fallback = item.get("fallback")
    return PartitionSpec(
        id=_field(item, "id", int, where),
        target=_field(item, "target", str, where),
        device=_field(item, "device", str, where),
        inputs=_names(item, "inputs", where),
        params=_names(item, "params", where),
        outputs=_names(item, "outputs", where),
        code=tuple(_code(c, f"{where}.code[{j}]") for j, c in enumerate(code)),
        fallback=None if fallback is None else _code(fallback, f"{where}.fallback"),
    )


def _weights(manifest: Mapping[str, Any]) -> dict[str, WeightSpec]:
    weights = {}
    for name, item in _field(manifest, "weights", dict, "manifest").items():
        where = f"manifest.weights[{name!r}]"
        if not isinstance(item, dict):
            raise _fail(where, "should be an object")
        member = _field(item, "member", str, where)
        weights[name] = WeightSpec(name, member, _shape(item, where), _dtype(item, where))
    return weights


def _check_dataflow(parsed: ParsedManifest) -> None:
    """Names are defined once, before use; params are weights; outputs are all defined."""
    defined = {s.name for s in parsed.inputs}
    clash = sorted(defined & parsed.weights.keys())
    if clash:
        raise _fail("manifest.weights", f"reuses input names {clash}")
    defined |= parsed.weights.keys()
    ids = [p.id for p in parsed.partitions]
    if len(set(ids)) != len(ids):
        raise _fail("manifest.partitions", f"has duplicate ids {ids}")
    for i, p in enumerate(parsed.partitions):
        where = f"manifest.partitions[{i}]"
        undefined = [n for n in p.inputs if n not in defined]
        if undefined:
            raise _fail(f"{where}.inputs", f"uses {undefined} before any partition produces them")
        not_weights = [n for n in p.params if n not in parsed.weights]
        if not_weights:
            raise _fail(f"{where}.params", f"names {not_weights}, which are not weights")
        redefined = [n for n in p.outputs if n in defined]
        if redefined or len(set(p.outputs)) != len(p.outputs):
            raise _fail(f"{where}.outputs", f"defines names that already exist: {list(p.outputs)}")
        if not p.code and p.fallback is None:
            raise _fail(f"{where}.code", "is empty and there is no fallback")
        defined |= set(p.outputs)
    missing = [s.name for s in parsed.outputs if s.name not in defined]
    if missing:
        raise _fail("manifest.outputs", f"names {missing}, which nothing produces")


def referenced_members(parsed: ParsedManifest) -> list[str]:
    """Every member the manifest points at (weights, code, fallbacks), in manifest order."""
    names = [w.member for w in parsed.weights.values()]
    for p in parsed.partitions:
        names += [c.member for c in p.code]
        if p.fallback is not None:
            names.append(p.fallback.member)
    return names


def parse_manifest(manifest: Any, members: Collection[str]) -> ParsedManifest:
    """Check ``manifest``'s structure against the member names present; return typed views."""
    if not isinstance(manifest, dict):
        raise _fail("manifest", f"should be a JSON object, not {type(manifest).__name__}")
    parts = _field(manifest, "partitions", list, "manifest")
    parsed = ParsedManifest(
        inputs=_tensors(manifest, "inputs"),
        outputs=_tensors(manifest, "outputs"),
        weights=_weights(manifest),
        partitions=tuple(_partition(p, f"manifest.partitions[{i}]") for i, p in enumerate(parts)),
    )
    _check_dataflow(parsed)
    absent = [m for m in referenced_members(parsed) if m not in members]
    if absent:
        raise ArtifactError(
            f"the artifact manifest refers to members that are not in it: {absent}",
            hint="the artifact is incomplete; recompile the model",
        )
    return parsed


def check_member_hashes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Return ``manifest["members"]`` after checking it maps names to sha256 hex digests."""
    hashes = _field(manifest, "members", dict, "manifest")
    for name, digest in hashes.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise _fail(f"manifest.members[{name!r}]", "should be a lowercase sha256 hex digest")
    return dict(hashes)
