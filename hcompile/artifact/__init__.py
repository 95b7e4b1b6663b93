"""The ``.hca`` artifact: one zip with a manifest, per-partition code and weights.

    from hcompile.artifact import Artifact
    art = Artifact.read("model.hca")        # verified: hashes, versions, safe member names
    print(art.describe())
    art.save("copy.hca")                    # atomic; refuses to clobber non-artifact files

Imports numpy only (never onnx or tvm). The format is documented in docs/artifact.md.
"""

from hcompile.artifact.archive import DEFAULT_MAX_TOTAL_SIZE, is_artifact_file
from hcompile.artifact.artifact import Artifact, decode_weight, npy_bytes
from hcompile.artifact.manifest import (
    DTYPES,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_MEMBER,
    CodeSpec,
    ParsedManifest,
    PartitionSpec,
    TensorSpec,
    WeightSpec,
)

__all__ = [
    "DEFAULT_MAX_TOTAL_SIZE",
    "DTYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_MEMBER",
    "Artifact",
    "CodeSpec",
    "ParsedManifest",
    "PartitionSpec",
    "TensorSpec",
    "WeightSpec",
    "decode_weight",
    "is_artifact_file",
    "npy_bytes",
]
