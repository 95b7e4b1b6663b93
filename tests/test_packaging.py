"""Packaging: every package folder is installed under the name DESIGN.md gives it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _installed_name(folder: Path) -> str:
    rel = folder.relative_to(ROOT)
    parts = list(rel.parts)
    if parts[0] in ("passes", "targets"):
        parts = ["hcompile", *parts]
    return ".".join(parts)


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        _installed_name(init.parent)
        for top in ("hcompile", "passes", "targets")
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed, f"missing: {found - listed}, stale: {listed - found}"


def test_passes_and_targets_install_under_hcompile():
    import hcompile.passes
    import hcompile.targets

    assert Path(hcompile.passes.__file__).parent == ROOT / "passes"
    assert Path(hcompile.targets.__file__).parent == ROOT / "targets"
