"""The on-disk code cache: verified blobs (CPU ``.so`` files) named by their sha256.

A shared library must be a file to be loaded, so the runtime writes each code member once
to ``<cache>/<kind>/<sha256><suffix>`` (atomically) and reuses it while its hash matches.
The cache directory is ``$HCOMPILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/hcompile``, else
``~/.cache/hcompile``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hcompile.artifact.archive import create_temp_beside
from hcompile.errors import ArtifactError


def default_cache_dir() -> Path:
    explicit = os.environ.get("HCOMPILE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "hcompile"


def _file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def store_blob(data: bytes, *, kind: str, suffix: str, cache_dir: Path) -> Path:
    """Return the cache path holding ``data``, writing it (atomically) only when needed."""
    digest = hashlib.sha256(data).hexdigest()
    path = cache_dir / kind / f"{digest}{suffix}"
    if path.is_file() and _file_sha256(path) == digest:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temp_beside(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ArtifactError(
            f"cannot write the artifact's code to the cache directory {cache_dir}: {e}",
            hint="set HCOMPILE_CACHE_DIR (or pass cache_dir=) to a writable directory on a "
            "file system that allows executable mappings (not mounted noexec)",
        ) from e
    return path
