"""The in-memory artifact: a manifest plus named member bytes; saving, reading, weights."""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hcompile.artifact import archive
from hcompile.artifact.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_MEMBER,
    ParsedManifest,
    TensorSpec,
    WeightSpec,
    parse_manifest,
)
from hcompile.artifact.versions import check_compatible, hcompile_version, installed_tvm_version
from hcompile.errors import ArtifactError, UsageError
from hcompile.ir.types import from_storage, storage_dtype, to_storage


def _utc_now() -> str:
    """ISO-8601 UTC time; ``SOURCE_DATE_EPOCH`` pins it for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def npy_bytes(array: np.ndarray) -> bytes:
    """Serialise an array as ``.npy`` (never pickled)."""
    buf = io.BytesIO()
    # .npy cannot describe ml_dtypes types: a narrow array is written as its storage bits
    np.lib.format.write_array(buf, to_storage(np.ascontiguousarray(array)), allow_pickle=False)
    return buf.getvalue()


def decode_weight(spec: WeightSpec, data: bytes, source: str | None = None) -> np.ndarray:
    """Decode a ``.npy`` weight member (no pickle) and check it against its manifest entry."""
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ArtifactError(
            f"weight {spec.name!r} (member {spec.member!r}) is not a valid .npy array: {e}",
            hint="the artifact is corrupt; recompile the model",
            source=source,
        ) from e
    if array.shape == spec.shape and array.dtype.name == storage_dtype(spec.dtype):
        array = from_storage(array, spec.dtype)  # .npy holds a narrow type's storage bits
    if array.shape != spec.shape or array.dtype != np.dtype(spec.dtype):
        raise ArtifactError(
            f"weight {spec.name!r} holds {array.dtype}{list(array.shape)}, but the manifest "
            f"says {spec.dtype}{list(spec.shape)}",
            hint="the artifact is inconsistent; recompile the model",
            source=source,
        )
    return array


@dataclass
class Artifact:
    """A compiled model: ``manifest`` (JSON-able dict) and ``members`` (name -> bytes).

    Build one by hand or with :func:`hcompile.compile`; ``save`` writes the ``.hca`` zip and
    ``Artifact.read`` reads one back, verified. See docs/artifact.md for the format.
    """

    manifest: dict[str, Any]
    members: dict[str, bytes] = field(default_factory=dict)

    # -- reading and writing -------------------------------------------------------------

    @classmethod
    def read(
        cls,
        path: str | os.PathLike[str],
        *,
        check_tvm_version: bool = True,
        max_total_size: int = archive.DEFAULT_MAX_TOTAL_SIZE,
    ) -> Artifact:
        """Read and fully verify an ``.hca`` file (see docs/artifact.md, "Verification").

        ``check_tvm_version=False`` accepts code from another TVM release; use it only to
        look at an artifact (``hcompile inspect``), never to run one.
        """
        limits = archive.Limits(max_total_size=max_total_size)
        path = Path(path)
        manifest, members = archive.read_verified(path, limits=limits, check_tvm=check_tvm_version)
        return cls(manifest, members)

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the artifact atomically to ``path`` and return the path.

        Fills in ``format``, ``format_version`` and the ``members`` hashes, and, when absent,
        ``hcompile_version``, ``tvm_version`` and ``created``; the completed manifest also
        replaces ``self.manifest``. An existing hcompile artifact at ``path`` is replaced;
        any other existing file is refused unless ``force=True``.
        """
        path = Path(path)
        manifest = self._completed_manifest()
        parse_manifest(manifest, self.members.keys())
        archive.write_atomic(path, manifest, self.members, force=force)
        self.manifest = manifest
        return path

    def _completed_manifest(self) -> dict[str, Any]:
        for name, data in self.members.items():
            reason = archive.unsafe_name_reason(name) if name != MANIFEST_MEMBER else "is reserved"
            if reason:
                raise UsageError(f"cannot save member {name!r}: its name {reason}")
            if not isinstance(data, bytes | bytearray | memoryview):
                raise UsageError(f"member {name!r} must be bytes, not {type(data).__name__}")
        try:
            manifest: dict[str, Any] = json.loads(json.dumps(self.manifest, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise UsageError(f"the artifact manifest cannot be written as JSON: {e}") from e
        manifest["format"] = FORMAT_NAME
        manifest["format_version"] = FORMAT_VERSION
        manifest.setdefault("hcompile_version", hcompile_version())
        tvm_version = manifest.get("tvm_version") or installed_tvm_version()
        if tvm_version is None:
            raise UsageError(
                "cannot tell which TVM compiled this artifact: set manifest['tvm_version'] "
                "or install apache-tvm"
            )
        manifest["tvm_version"] = tvm_version
        manifest.setdefault("created", _utc_now())
        manifest["members"] = {n: archive.sha256(bytes(d)) for n, d in sorted(self.members.items())}
        return manifest

    def check(self) -> ParsedManifest:
        """Verify an in-memory artifact as far as it is filled in; return the parsed views.

        Checks the structure, member names, and, where present, the format/version fields
        and the member hashes (an artifact fresh from the compiler has neither yet).
        """
        if "format" in self.manifest or "format_version" in self.manifest:
            check_compatible(self.manifest, "<in-memory artifact>")
        for name in self.members:
            reason = archive.unsafe_name_reason(name)
            if reason:
                raise ArtifactError(f"refusing member {name!r}: its name {reason}")
        hashes = self.manifest.get("members")
        if isinstance(hashes, dict):
            for name, expected in hashes.items():
                data = self.members.get(name)
                if data is None or archive.sha256(bytes(data)) != expected:
                    raise ArtifactError(
                        f"member {name!r} is missing or does not match its sha256",
                        hint="recompile the model",
                    )
        return parse_manifest(self.manifest, self.members.keys())

    # -- contents ---------------------------------------------------------------------------

    def parsed(self) -> ParsedManifest:
        """Typed views of the manifest (structure checked; hashes not recomputed)."""
        return parse_manifest(self.manifest, self.members.keys())

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self.parsed().inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self.parsed().outputs)

    def add_weight(self, name: str, array: np.ndarray, *, member: str | None = None) -> str:
        """Store ``array`` as weight ``name`` (a ``.npy`` member); return the member name."""
        array = np.asarray(array)
        weights = self.manifest.setdefault("weights", {})
        if member is None:
            stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] or "w"
            member = f"weights/{stem}-{len(weights)}.npy"
        self.members[member] = npy_bytes(array)
        weights[name] = {"member": member, "shape": list(array.shape), "dtype": str(array.dtype)}
        return member

    def load_weight(self, name: str) -> np.ndarray:
        """Decode weight ``name`` from its member (checked against its manifest entry)."""
        spec = self.parsed().weights.get(name)
        if spec is None:
            raise UsageError(f"the artifact has no weight named {name!r}")
        return decode_weight(spec, self.members[spec.member])

    def describe(self, source: str | None = None) -> str:
        """A readable multi-line summary (what ``hcompile inspect`` prints)."""
        from hcompile.artifact.describe import describe

        return describe(self, source)
