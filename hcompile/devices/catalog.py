"""Built-in profiles, the user's ``--devices`` file, and the device set of one compile.

Built-in profiles are TOML files shipped in ``hcompile/devices/profiles/`` (one profile per
file, links in ``links.toml``), each figure with its public source in a comment. The host CPU
is the calibrated profile cached for this machine (``hcompile devices --calibrate``), or
``host-generic`` until the machine is calibrated.

``--devices`` takes a TOML file with one table per target, each starting from a built-in
profile (``base = "nvidia-t4"``) and overriding what differs, or a comma-separated list of
built-in profile names (``--devices nvidia-h100,intel-arria10-gx``)::

    [gpu]
    base = "nvidia-t4"
    link = "pcie-gen3-x8"      # a built-in link, or {bandwidth = 6e9, latency_s = 2e-5}

    [fpga]
    base = "intel-arria10-gx"
    fpga = {dsp = 1200}        # tables merge key by key
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hcompile.devices.profile import DeviceProfile, LinkProfile
from hcompile.errors import UsageError

#: The profile each target uses when ``--devices`` does not say.
DEFAULT_PROFILES = {"cpu": "host", "gpu": "nvidia-a100", "fpga": "alveo-u250"}


@dataclass(frozen=True)
class DeviceSet:
    """The profiles of one compile, by target name (``cpu`` is always present: the host)."""

    profiles: Mapping[str, DeviceProfile]

    def __getitem__(self, target: str) -> DeviceProfile:
        if target not in self.profiles:
            raise UsageError(f"no device profile for target {target!r}",
                             hint="add a table for it to the --devices file")
        return self.profiles[target]

    def __contains__(self, target: object) -> bool:
        return target in self.profiles

    def __iter__(self) -> Iterator[str]:
        return iter(self.profiles)

    def describe(self) -> dict[str, str]:
        """Target -> ``profile name (source)`` for reports."""
        return {t: f"{p.name} ({p.source})" for t, p in self.profiles.items()}


def _profile_dir() -> Any:
    return resources.files("hcompile.devices").joinpath("profiles")


def _read_toml(name: str) -> dict[str, Any]:
    path = _profile_dir().joinpath(name)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"built-in profile file {name} is missing",
                         hint="reinstall hcompile (its TOML files are package data)") from None


def builtin_links() -> dict[str, LinkProfile]:
    raw = _read_toml("links.toml")
    return {name: LinkProfile.from_mapping({"name": name, **table}, f"links.toml[{name}]")
            for name, table in raw.items()}


def builtin_names() -> list[str]:
    """Names of the built-in device profiles (``host`` is the calibrated host CPU)."""
    names = [p.name[:-5] for p in _profile_dir().iterdir()
             if p.name.endswith(".toml") and p.name != "links.toml"]
    return sorted([*names, "host"])


def builtin_table(name: str) -> dict[str, Any]:
    """The raw TOML table of built-in profile ``name``."""
    if name == "host":
        from hcompile.devices.calibrate import cached_host_table

        cached = cached_host_table()
        return cached if cached is not None else _read_toml("host-generic.toml")
    if name not in builtin_names():
        raise UsageError(f"unknown device profile {name!r}",
                         hint=f"built-in profiles: {', '.join(builtin_names())}")
    return _read_toml(f"{name}.toml")


def builtin_profile(name: str) -> DeviceProfile:
    table = builtin_table(name)
    where = table.get("calibration", {}).get("cache_file") if name == "host" else None
    return DeviceProfile.from_mapping(table, where=where or f"built-in {name}",
                                      links=builtin_links())


def load_devices(spec: str | Path | None = None,
                 overrides: Mapping[str, DeviceProfile] | None = None) -> DeviceSet:
    """The device set: defaults, then the ``--devices`` file or names, then ``overrides``."""
    links = builtin_links()
    tables: dict[str, dict[str, Any]] = {t: {"base": n} for t, n in DEFAULT_PROFILES.items()}
    origin = {t: f"built-in {n}" for t, n in DEFAULT_PROFILES.items()}
    if spec is not None:
        path = Path(spec)
        if path.suffix == ".toml" or path.exists():
            user = _read_user_file(path)
            for name, table in dict(user.pop("links", {})).items():
                links[name] = LinkProfile.from_mapping({"name": name, **table},
                                                       f"{path}: links.{name}")
            for target, table in user.items():
                if not isinstance(table, Mapping):
                    raise UsageError(f"{path}: [{target}] must be a table")
                tables[target] = dict(table)
                origin[target] = str(path)
        else:
            for name in (n.strip() for n in str(spec).split(",") if n.strip()):
                target = str(builtin_table(name)["target"])
                tables[target] = {"base": name}
                origin[target] = f"built-in {name}"
    profiles = {}
    for target, table in tables.items():
        merged = _resolve(table, origin[target])
        merged.setdefault("target", target)
        if merged["target"] != target:
            raise UsageError(f"{origin[target]}: [{target}] uses a {merged['target']} profile",
                             hint="put each profile under the table of the target it serves")
        source = merged.get("calibration", {}).get("cache_file") or origin[target]
        profiles[target] = DeviceProfile.from_mapping(merged, where=source, links=links)
    profiles.update(overrides or {})
    return DeviceSet(profiles)


def _resolve(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    table = dict(table)
    base = table.pop("base", None)
    if base is None:
        return table
    return _merge(builtin_table(str(base)), table)


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_user_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"devices file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"devices file {path} is not valid TOML: {err}") from None
