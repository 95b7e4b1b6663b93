"""Version fields of the manifest and the compatibility rules for reading them.

The installed TVM version is read from the package metadata, never by importing ``tvm``
(which would load the whole compiler).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping
from typing import Any

from hcompile.artifact.manifest import FORMAT_NAME, FORMAT_VERSION
from hcompile.errors import ArtifactError

#: the distributions that may provide the ``tvm`` package, in the order they are tried
_TVM_DISTRIBUTIONS = ("apache-tvm", "tvm")


def hcompile_version() -> str:
    from hcompile import __version__

    return __version__


def installed_tvm_version() -> str | None:
    """The installed TVM's version (``"0.27.0.post1"``), or None when no TVM is installed."""
    for dist in _TVM_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"^\s*v?(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def check_compatible(manifest: Mapping[str, Any], source: str, *, check_tvm: bool = True) -> None:
    """Refuse manifests of another format, a newer layout or (``check_tvm``) another TVM."""
    if manifest.get("format") != FORMAT_NAME:
        raise ArtifactError(
            f"not an hcompile artifact: its manifest says format {manifest.get('format')!r}, "
            f"expected {FORMAT_NAME!r}",
            hint="pass a .hca file written by `hcompile compile` or Artifact.save",
            source=source,
        )
    version = manifest.get("format_version")
    writer = manifest.get("hcompile_version", "an unknown version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArtifactError(
            f"the artifact manifest has an invalid format_version {version!r}",
            hint="the artifact is corrupt; recompile the model",
            source=source,
        )
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"the artifact uses format version {version} (written by hcompile {writer}); this "
            f"hcompile {hcompile_version()} reads format versions up to {FORMAT_VERSION}",
            hint=f"upgrade hcompile to {writer} or newer, or recompile the model with this one",
            source=source,
        )
    if not check_tvm:
        return
    built = manifest.get("tvm_version")
    installed = installed_tvm_version()
    if not isinstance(built, str) or major_minor(built) is None:
        raise ArtifactError(
            f"the artifact manifest has an invalid tvm_version {built!r}",
            hint="the artifact is corrupt; recompile the model",
            source=source,
        )
    if installed is not None and major_minor(built) != major_minor(installed):
        raise ArtifactError(
            f"the artifact was compiled with TVM {built}, but TVM {installed} is installed; "
            "code from another TVM release cannot be loaded",
            hint=f"recompile the model with this hcompile, or install apache-tvm {built}",
            source=source,
        )
