"""The zip container: verified reading and atomic writing.

Reading checks everything before handing any byte on (and never extracts to disk):
it is a zip; member names are safe (relative, no ``..``, no backslashes, no symlinks,
no duplicates); sizes stay under a zip-bomb guard; ``manifest.json`` is valid and
compatible; the set of members equals the manifest's list; every member's sha256 matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcompile.artifact.manifest import (
    FORMAT_NAME,
    MANIFEST_MEMBER,
    check_member_hashes,
    parse_manifest,
)
from hcompile.artifact.versions import check_compatible
from hcompile.errors import ArtifactError

#: total uncompressed size an artifact may declare
DEFAULT_MAX_TOTAL_SIZE = 4 << 30
#: members larger than this are refused when they compress better than MAX_RATIO : 1
RATIO_CHECK_SIZE = 1 << 20
MAX_RATIO = 200
MAX_MANIFEST_SIZE = 64 << 20
#: zip timestamps are fixed so that equal content gives equal files
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Limits:
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE
    max_ratio: int = MAX_RATIO
    ratio_check_size: int = RATIO_CHECK_SIZE


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` may not be a member name (None when it is fine)."""
    if not name or "\x00" in name:
        return "is empty or contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "contains '..'"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' path component"
    return None


def _bad(source: str, message: str, hint: str | None = None) -> ArtifactError:
    return ArtifactError(
        message,
        hint=hint or "the artifact is corrupt or was tampered with; recompile the model",
        source=source,
    )


def _check_entries(infos: list[zipfile.ZipInfo], source: str, limits: Limits) -> None:
    names = [i.filename for i in infos]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _bad(source, f"the artifact holds duplicate members {dupes}")
    total = 0
    for info in infos:
        reason = unsafe_name_reason(info.filename)
        if reason:
            raise _bad(source, f"refusing member {info.filename!r}: its name {reason}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _bad(source, f"refusing member {info.filename!r}: it is a symbolic link")
        if info.flag_bits & 0x1:
            raise _bad(source, f"refusing member {info.filename!r}: it is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(source, f"refusing member {info.filename!r}: unsupported compression")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_check_size and ratio > limits.max_ratio:
            raise _bad(
                source,
                f"refusing member {info.filename!r}: it expands {ratio:.0f}x "
                f"(limit {limits.max_ratio}x for members over {limits.ratio_check_size} bytes), "
                "which looks like a zip bomb",
            )
        total += info.file_size
    if total > limits.max_total_size:
        raise _bad(
            source,
            f"the artifact would unpack to {total} bytes, over the limit of "
            f"{limits.max_total_size} bytes",
            hint="if the model really is this large, raise the limit (max_total_size)",
        )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise _bad(source, f"member {info.filename!r} cannot be read: {e}") from e
    if len(data) != info.file_size:
        raise _bad(source, f"member {info.filename!r} has the wrong size")
    return data


def _parse_manifest(data: bytes, source: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(source, f"manifest.json is not valid JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise _bad(source, "manifest.json does not hold a JSON object")
    return manifest


@contextlib.contextmanager
def _open_zip(path: Path, source: str) -> Iterator[zipfile.ZipFile]:
    if not path.exists():
        raise ArtifactError("the artifact file does not exist", source=source)
    if path.is_dir():
        raise ArtifactError("the artifact path is a directory, not a .hca file", source=source)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise ArtifactError(
            f"not an hcompile artifact: the file is not a zip archive ({e})",
            hint="pass a .hca file written by `hcompile compile`; a partly copied file "
            "is truncated and must be copied again",
            source=source,
        ) from e
    except OSError as e:
        raise ArtifactError(f"cannot read the artifact: {e}", source=source) from e
    with zf:
        yield zf


def read_verified(
    path: Path, *, limits: Limits, check_tvm: bool = True
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read and verify the artifact at ``path``; return its manifest and members."""
    source = str(path)
    with _open_zip(path, source) as zf:
        infos = zf.infolist()
        _check_entries(infos, source, limits)
        by_name = {i.filename: i for i in infos}
        info = by_name.pop(MANIFEST_MEMBER, None)
        if info is None:
            raise ArtifactError(
                "not an hcompile artifact: the zip has no manifest.json",
                hint="pass a .hca file written by `hcompile compile`",
                source=source,
            )
        if info.file_size > MAX_MANIFEST_SIZE:
            raise _bad(source, f"manifest.json is {info.file_size} bytes, over the limit")
        manifest = _parse_manifest(_read_member(zf, info, source), source)
        check_compatible(manifest, source, check_tvm=check_tvm)
        hashes = check_member_hashes(manifest)
        extra = sorted(by_name.keys() - hashes.keys())
        if extra:
            raise _bad(source, f"the artifact holds members its manifest does not list: {extra}")
        missing = sorted(hashes.keys() - by_name.keys())
        if missing:
            raise _bad(source, f"the artifact lacks members its manifest lists: {missing}")
        try:
            parse_manifest(manifest, hashes.keys())
        except ArtifactError as e:
            raise e.with_context(source=source) from None
        members = {}
        for name, expected in hashes.items():
            data = _read_member(zf, by_name[name], source)
            if sha256(data) != expected:
                raise _bad(source, f"member {name!r} does not match its sha256 in the manifest")
            members[name] = data
    return manifest, members


def is_artifact_file(path: Path) -> bool:
    """Whether ``path`` is a zip holding an hcompile manifest (a cheap check, not a verify)."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(MANIFEST_MEMBER)
            if info.file_size > MAX_MANIFEST_SIZE:
                return False
            manifest = json.loads(zf.read(info))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError, zlib.error):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def _compress_type(name: str, data: bytes, limits: Limits) -> int:
    """Deflate code and metadata; store weights (incompressible floats, and kept mappable)
    and anything the reader's zip-bomb guard would refuse (e.g. megabytes of zeros)."""
    if name.startswith("weights/") or name.endswith(".npy"):
        return zipfile.ZIP_STORED
    if len(data) > limits.ratio_check_size:
        packed = len(zlib.compress(data, 6))
        if len(data) > packed * limits.max_ratio // 2:
            return zipfile.ZIP_STORED
    return zipfile.ZIP_DEFLATED


def _zip_entry(zf: zipfile.ZipFile, name: str, data: bytes, compress_type: int) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = compress_type
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    zf.writestr(info, data)


def create_temp_beside(path: Path) -> tuple[int, Path]:
    """Create a new temporary file next to ``path`` (same file system, so ``os.replace`` is
    atomic), with the permissions a plain ``open(path, "w")`` would give under the umask."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(
    path: Path, manifest: Mapping[str, Any], members: Mapping[str, bytes], *, force: bool
) -> None:
    """Write the zip to a temporary file beside ``path`` and rename it into place."""
    source = str(path)
    if path.is_dir():
        raise ArtifactError("cannot save the artifact: the path is a directory", source=source)
    if path.exists() and not force and not is_artifact_file(path):
        raise ArtifactError(
            "refusing to overwrite the file: it exists and is not an hcompile artifact",
            hint="choose another output path, or pass force=True (--force) to replace it",
            source=source,
        )
    limits = Limits()
    text = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
    try:
        fd, tmp = create_temp_beside(path)
    except OSError as e:
        raise ArtifactError(
            f"cannot save the artifact: {e}",
            hint="check that the output directory exists and is writable",
            source=source,
        ) from e
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                _zip_entry(zf, MANIFEST_MEMBER, text, zipfile.ZIP_DEFLATED)
                for name, data in members.items():
                    _zip_entry(zf, name, data, _compress_type(name, data, limits))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ArtifactError(f"cannot save the artifact: {e}", source=source) from e
        raise
