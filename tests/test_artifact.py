"""The .hca container: saving, reading, verification against hostile files, describe.

Verification happens before any code is loaded, so these artifacts carry stand-in code
bytes; tests/test_runtime.py runs real compiled code.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hcompile.artifact import Artifact, is_artifact_file
from hcompile.errors import ArtifactError, UsageError

CODE = "partitions/0/cpu.so"


PLAN = {
    "partitioner": "heft", "solve_ms": 3.1, "predicted_ms": 4.2,
    "single_device_ms": {"cpu": 6.0, "gpu": 5.1},
    "partitions": [{"id": 0}], "transfers": [], "nodes": [{}, {}],
}  # fmt: skip


def make_artifact() -> Artifact:
    partition = {
        "id": 0, "target": "cpu", "device": "cpu", "inputs": ["x"], "params": ["W", "b"],
        "outputs": ["y"], "fallback": None,
        "code": [{"format": "tvm-relax-vm-so", "member": CODE, "entry": "main"}],
    }  # fmt: skip
    manifest = {
        "model": {"name": "lin", "source": "lin.onnx", "sha256": "ab" * 32},
        "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 3], "dtype": "float32"}],
        "plan": PLAN,
        "partitions": [partition],
    }
    art = Artifact(manifest, {CODE: b"\x7fELF stand-in code " * 100})
    art.add_weight("W", np.arange(12, dtype=np.float32).reshape(4, 3))
    art.add_weight("b", np.ones(3, np.float32))
    return art


@pytest.fixture
def hca(tmp_path: Path) -> Path:
    return make_artifact().save(tmp_path / "lin.hca")


# -- saving ----------------------------------------------------------------------------------


def test_save_fills_fields_and_reads_back(hca: Path) -> None:
    art = Artifact.read(hca)
    m = art.manifest
    assert (m["format"], m["format_version"]) == ("hcompile-artifact", 1)
    assert m["hcompile_version"] == "0.1.0"
    assert m["tvm_version"] == importlib.metadata.version("apache-tvm")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["created"])
    assert art.members == make_artifact().members
    assert set(m["members"]) == set(art.members)
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in m["members"].values())
    np.testing.assert_array_equal(art.load_weight("W"), np.arange(12).reshape(4, 3))
    assert art.inputs == [("x", (1, 4), "float32")]


def test_save_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = make_artifact().save(tmp_path / "a.hca").read_bytes()
    b = make_artifact().save(tmp_path / "b.hca").read_bytes()
    assert a == b
    assert Artifact.read(tmp_path / "a.hca").manifest["created"] == "2023-11-14T22:13:20Z"


def test_save_refuses_to_overwrite_other_files(tmp_path: Path) -> None:
    precious = tmp_path / "model.onnx"
    precious.write_bytes(b"my only copy")
    with pytest.raises(ArtifactError, match="exists and is not an hcompile artifact") as info:
        make_artifact().save(precious)
    assert "force=True" in str(info.value)
    assert precious.read_bytes() == b"my only copy"
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ArtifactError, match="not an hcompile artifact"):
        make_artifact().save(other_zip)
    make_artifact().save(precious, force=True)
    assert is_artifact_file(precious)


def test_save_replaces_an_existing_artifact(hca: Path) -> None:
    art = make_artifact()
    art.manifest["model"]["name"] = "second"
    art.save(hca)
    assert Artifact.read(hca).manifest["model"]["name"] == "second"


def test_save_is_atomic(hca: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = hca.read_bytes()
    calls = []
    real = zipfile.ZipFile.writestr

    def failing(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(ArtifactError, match="cannot save the artifact: disk full"):
        make_artifact().save(hca)
    assert hca.read_bytes() == before
    assert sorted(p.name for p in hca.parent.iterdir()) == ["lin.hca"]  # no temp file left


def test_save_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot save the artifact") as info:
        make_artifact().save(tmp_path / "no" / "such" / "dir" / "m.hca")
    assert "output directory exists" in str(info.value)


def test_saved_file_permissions_follow_umask(hca: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(hca.stat().st_mode) == 0o666 & ~umask


def test_large_compressible_members_are_not_mistaken_for_bombs(tmp_path: Path) -> None:
    art = make_artifact()
    art.add_weight("zeros", np.zeros((1024, 1024), np.float32))  # 4 MiB of zeros
    art.members["partitions/0/notes.bin"] = bytes(3 << 20)  # unreferenced, compressible
    path = art.save(tmp_path / "big.hca")
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(art.manifest["weights"]["zeros"]["member"]).compress_type == 0
        assert zf.getinfo(CODE).compress_type == zipfile.ZIP_DEFLATED
    assert Artifact.read(path).load_weight("zeros").shape == (1024, 1024)


@pytest.mark.parametrize("name", ["../evil.so", "/abs.so", "a\\b.so", "manifest.json", "a//b"])
def test_save_rejects_unsafe_member_names(tmp_path: Path, name: str) -> None:
    art = make_artifact()
    art.members[name] = b"x"
    with pytest.raises(UsageError, match="cannot save member"):
        art.save(tmp_path / "x.hca")
    assert not (tmp_path / "x.hca").exists()


def test_save_rejects_inconsistent_manifest(tmp_path: Path) -> None:
    art = make_artifact()
    art.manifest["partitions"][0]["inputs"] = ["q"]
    with pytest.raises(ArtifactError, match=r"partitions\[0\]\.inputs uses \['q'\] before"):
        art.save(tmp_path / "x.hca")
    art = make_artifact()
    del art.members[CODE]
    with pytest.raises(ArtifactError, match="refers to members that are not in it"):
        art.save(tmp_path / "x.hca")


# -- hostile and broken files ---------------------------------------------------------------


def _rewrite(
    src: Path,
    dst: Path,
    *,
    manifest: Callable[[dict[str, Any]], None] | None = None,
    replace: dict[str, bytes] | None = None,
    drop: tuple[str, ...] = (),
    add: tuple[tuple[zipfile.ZipInfo, bytes], ...] = (),
    rehash: bool = True,
) -> Path:
    """Copy ``src`` with one defect; with ``rehash`` the manifest lists the new members'
    true hashes, so that only the intended defect remains."""
    import hashlib

    with zipfile.ZipFile(src) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    m = json.loads(entries.pop("manifest.json"))
    entries.update(replace or {})
    for name in drop:
        entries.pop(name)
    if rehash:
        for info, data in add:
            m["members"][info.filename] = hashlib.sha256(data).hexdigest()
    if manifest:
        manifest(m)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(m))
        for name, data in entries.items():
            zf.writestr(name, data)
        for info, data in add:
            zf.writestr(info, data)
    return dst


def _refused(path: Path, pattern: str, **kwargs: Any) -> str:
    with pytest.raises(ArtifactError, match=pattern) as info:
        Artifact.read(path, **kwargs)
    assert str(path) in str(info.value)  # names the file
    return str(info.value)


def test_rewrite_helper_keeps_a_valid_artifact(hca: Path, tmp_path: Path) -> None:
    assert Artifact.read(_rewrite(hca, tmp_path / "copy.hca")).members == make_artifact().members


def test_tampered_member(hca: Path, tmp_path: Path) -> None:
    data = bytearray(make_artifact().members[CODE])
    data[5] ^= 0xFF
    bad = _rewrite(hca, tmp_path / "bad.hca", replace={CODE: bytes(data)})
    _refused(bad, "member 'partitions/0/cpu.so' does not match its sha256")


def test_corrupt_compressed_bytes(hca: Path, tmp_path: Path) -> None:
    data = bytearray(hca.read_bytes())
    with zipfile.ZipFile(hca) as zf:
        info = zf.getinfo(CODE)
    start = info.header_offset + 30 + len(info.filename.encode())
    data[start + 20] ^= 0xFF
    bad = tmp_path / "bad.hca"
    bad.write_bytes(bytes(data))
    _refused(bad, "member 'partitions/0/cpu.so' (cannot be read|does not match)")


def test_future_format_version(hca: Path, tmp_path: Path) -> None:
    def future(m: dict[str, Any]) -> None:
        m["format_version"] = 2
        m["hcompile_version"] = "0.9.0"

    msg = _refused(_rewrite(hca, tmp_path / "f.hca", manifest=future), "format version 2")
    assert "written by hcompile 0.9.0" in msg and "upgrade hcompile" in msg


def test_other_tvm_version(hca: Path, tmp_path: Path) -> None:
    def old(m: dict[str, Any]) -> None:
        m["tvm_version"] = "0.26.0"

    bad = _rewrite(hca, tmp_path / "t.hca", manifest=old)
    msg = _refused(bad, "compiled with TVM 0.26.0")
    assert "recompile the model with this hcompile" in msg
    # inspecting (not running) such an artifact is allowed
    assert "TVM 0.26.0" in Artifact.read(bad, check_tvm_version=False).describe()


def _entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("../../evil.so", "contains '..'"),
        ("partitions/../../evil.so", "contains '..'"),
        ("/tmp/evil.so", "is an absolute path"),
        ("C:/evil.so", "is an absolute path"),
        ("partitions\\0\\evil.so", "contains a backslash"),
    ],
)
def test_unsafe_member_names(hca: Path, tmp_path: Path, name: str, pattern: str) -> None:
    bad = _rewrite(hca, tmp_path / "n.hca", add=((_entry(name), b"payload"),))
    assert name in zipfile.ZipFile(bad).namelist()  # the name really is in the zip
    _refused(bad, f"refusing member .*: its name {re.escape(pattern)}")


def test_symlink_member(hca: Path, tmp_path: Path) -> None:
    link = _entry("partitions/0/link.so", stat.S_IFLNK | 0o777)
    bad = _rewrite(hca, tmp_path / "l.hca", add=((link, b"/etc/passwd"),))
    _refused(bad, "refusing member 'partitions/0/link.so': it is a symbolic link")


def test_zip_bomb_ratio(hca: Path, tmp_path: Path) -> None:
    bomb = _entry("partitions/0/bomb.bin")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    bad = _rewrite(hca, tmp_path / "b.hca", add=((bomb, bytes(8 << 20)),))
    _refused(bad, "'partitions/0/bomb.bin': it expands .*x .* zip bomb")


def test_total_size_limit(hca: Path) -> None:
    _refused(hca, "would unpack to .* over the limit of 1000 bytes", max_total_size=1000)


def test_missing_member(hca: Path, tmp_path: Path) -> None:
    bad = _rewrite(hca, tmp_path / "m.hca", drop=(CODE,))
    _refused(bad, r"lacks members its manifest lists: \['partitions/0/cpu.so'\]")


def test_extra_member(hca: Path, tmp_path: Path) -> None:
    extra = (_entry("partitions/0/extra.so"), b"surprise")
    bad = _rewrite(hca, tmp_path / "e.hca", add=(extra,), rehash=False)
    _refused(bad, r"members its manifest does not list: \['partitions/0/extra.so'\]")


def test_duplicate_member(hca: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        bad = _rewrite(hca, tmp_path / "d.hca", add=((_entry(CODE), b"second copy"),))
    _refused(bad, "duplicate members")


def test_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "model.hca"
    bad.write_text("hello")
    _refused(bad, "not an hcompile artifact: the file is not a zip archive")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_file(hca: Path, tmp_path: Path, keep: float) -> None:
    data = hca.read_bytes()
    bad = tmp_path / "cut.hca"
    bad.write_bytes(data[: int(len(data) * keep)])
    msg = _refused(bad, "not an hcompile artifact")
    assert "truncated" in msg


def test_zip_without_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "plain.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", "hi")
    _refused(bad, "no manifest.json")


def test_manifest_not_json(hca: Path, tmp_path: Path) -> None:
    bad = tmp_path / "j.hca"
    with zipfile.ZipFile(hca) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = b"{not json" if info.filename == "manifest.json" else src.read(info)
            dst.writestr(info, data)
    _refused(bad, "manifest.json is not valid JSON")


def test_manifest_of_another_format(hca: Path, tmp_path: Path) -> None:
    def other(m: dict[str, Any]) -> None:
        m["format"] = "onnx-bundle"

    _refused(_rewrite(hca, tmp_path / "o.hca", manifest=other), "format 'onnx-bundle'")


def test_manifest_with_bad_structure(hca: Path, tmp_path: Path) -> None:
    def bad_shape(m: dict[str, Any]) -> None:
        m["inputs"][0]["shape"] = [1, -4]

    bad = _rewrite(hca, tmp_path / "s.hca", manifest=bad_shape)
    _refused(bad, r"manifest.inputs\[0\].shape should list non-negative ints")

    def pickled_dtype(m: dict[str, Any]) -> None:
        m["weights"]["W"]["dtype"] = "object"

    bad = _rewrite(hca, tmp_path / "p.hca", manifest=pickled_dtype)
    _refused(bad, r"manifest.weights\['W'\].dtype is 'object'")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        Artifact.read(tmp_path / "nope.hca")
    with pytest.raises(ArtifactError, match="is a directory"):
        Artifact.read(tmp_path)


def test_runtime_refuses_before_writing_anything(hca: Path, tmp_path: Path) -> None:
    import hcompile.runtime

    data = bytearray(make_artifact().members[CODE])
    data[0] ^= 0xFF
    bad = _rewrite(hca, tmp_path / "bad.hca", replace={CODE: bytes(data)})
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        hcompile.runtime.load(bad, cache_dir=cache)
    assert not cache.exists()


def test_in_memory_artifact_checks_hashes(hca: Path) -> None:
    art = Artifact.read(hca)
    art.members[CODE] = b"swapped after reading"
    with pytest.raises(ArtifactError, match=r"'partitions/0/cpu\.so' is missing or does not match"):
        art.check()


# -- describe ---------------------------------------------------------------------------------


def test_describe(hca: Path) -> None:
    text = Artifact.read(hca).describe(str(hca))
    for part in (
        f"hcompile artifact {hca}",
        "format      hcompile-artifact v1, hcompile 0.1.0, TVM ",
        "model       lin (source lin.onnx, sha256 abababababababab…)",
        "inputs      x: float32[1, 4]",
        "outputs     y: float32[1, 3]",
        "weights     2 tensors, 60 B",
        "#0 target cpu on cpu: inputs ['x'], outputs ['y'], 2 params (60 B)",
        "code     tvm-relax-vm-so partitions/0/cpu.so (1.9 KiB), entry main",
        "fallback none",
        "plan        partitioner heft, predicted 4.2 ms (solved in 3.1 ms)",
        "single device: cpu 6 ms, gpu 5.1 ms",
        "1 partitions, 0 transfers, 2 nodes",
    ):
        assert part in text, f"{part!r} not in:\n{text}"


def test_describe_without_plan() -> None:
    art = make_artifact()
    del art.manifest["plan"]
    assert "plan        (none recorded)" in art.describe()


def test_npy_members_are_plain_npy(hca: Path) -> None:
    with zipfile.ZipFile(hca) as zf:
        member = json.loads(zf.read("manifest.json"))["weights"]["W"]["member"]
        data = zf.read(member)
    assert data.startswith(b"\x93NUMPY")
    assert np.load(io.BytesIO(data), allow_pickle=False).shape == (4, 3)
