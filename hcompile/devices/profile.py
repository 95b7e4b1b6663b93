"""Device profiles: what the cost model knows about a device, read from TOML.

A profile describes one device that a target runs on: peak FLOP/s per dtype, memory
bandwidth, per-kernel launch and per-partition dispatch overheads, per-op-kind efficiency,
the link to the host, the ops it cannot run and, for FPGAs, a resource budget and the kernel
resource model. Every field comes from a TOML table (``DeviceProfile.from_mapping``); unknown
keys are an error so that a typo in a user's ``--devices`` file is reported, not ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hcompile.errors import UsageError

#: Op kinds the cost model distinguishes (see ``hcompile.passes.cost.op_kind``).
OP_KINDS = ("conv", "strided_conv", "depthwise", "strided_depthwise", "matmul", "matmul_t",
            "matvec", "matvec_t", "batched_matvec", "elementwise", "pool", "norm", "reduce",
            "data")

#: A kind a profile does not list uses its parent's efficiency, then ``default``.
KIND_PARENT = {"strided_conv": "conv", "strided_depthwise": "depthwise", "depthwise": "conv",
               "matmul_t": "matmul", "matvec_t": "matvec", "matvec": "matmul",
               "batched_matvec": "matvec"}

#: Targets a profile can serve.
TARGET_KINDS = ("cpu", "gpu", "fpga")


@dataclass(frozen=True)
class Efficiency:
    """Fraction of the device's roofline an op kind reaches, possibly shape dependent.

    A scalar (``conv = 0.3``) or a table over the reduction length ``k`` and the output row
    length ``n`` (``conv = {k = [16, 256], n = [64], value = [[0.4], [0.03]]}``): ``value[i][j]``
    is the efficiency at ``k[i]``, ``n[j]``; between grid points it is interpolated linearly in
    log space, beyond the grid it is clamped to the edge. Untuned code generators (hcompile's
    CPU code today) vary by 20x with the reduction length, which a scalar cannot describe.
    """

    k: tuple[float, ...] = ()
    n: tuple[float, ...] = ()
    value: tuple[tuple[float, ...], ...] = ((1.0,),)

    @classmethod
    def scalar(cls, value: float) -> Efficiency:
        return cls((), (), ((float(value),),))

    def __call__(self, k: float = 1.0, n: float = 1.0) -> float:
        rows = [_interp(self.n, row, n) for row in self.value]
        return _interp(self.k, tuple(rows), k)

    def to_toml(self) -> Any:
        if not self.k and not self.n:
            return self.value[0][0]
        return {"k": list(self.k), "n": list(self.n), "value": [list(r) for r in self.value]}

    @classmethod
    def parse(cls, raw: Any, where: str) -> Efficiency:
        if isinstance(raw, int | float):
            eff = cls.scalar(float(raw))
        elif isinstance(raw, Mapping):
            unknown = sorted(set(raw) - {"k", "n", "value"})
            if unknown:
                raise UsageError(f"{where}: unknown keys {unknown}", hint="use k, n and value")
            k = tuple(float(x) for x in raw.get("k", ()))
            n = tuple(float(x) for x in raw.get("n", ()))
            value = tuple(tuple(float(x) for x in row) for row in raw.get("value", ()))
            if len(value) != max(len(k), 1) or any(len(r) != max(len(n), 1) for r in value):
                raise UsageError(f"{where}: value must be a {max(len(k), 1)} x "
                                 f"{max(len(n), 1)} table (rows by k, columns by n)")
            if list(k) != sorted(k) or list(n) != sorted(n):
                raise UsageError(f"{where}: k and n must be increasing")
            eff = cls(k, n, value)
        else:
            raise UsageError(f"{where}: expected a number or a table, got {raw!r}")
        if not all(0 < v <= 1.5 for row in eff.value for v in row):
            raise UsageError(f"{where}: efficiencies must be in (0, 1.5]")
        return eff


def _interp(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear interpolation of log(y) over log(x), clamped at the ends."""
    if len(ys) == 1 or not xs:
        return ys[0]
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    lx = math.log(x)
    for i in range(1, len(xs)):
        if x <= xs[i]:
            x0, x1 = math.log(xs[i - 1]), math.log(xs[i])
            w = (lx - x0) / (x1 - x0)
            return math.exp((1 - w) * math.log(ys[i - 1]) + w * math.log(ys[i]))
    return ys[-1]


@dataclass(frozen=True)
class LinkProfile:
    """The link between a device and the host: bandwidth per direction and latency per copy."""

    name: str
    bandwidth: float  # bytes/s, each direction
    latency_s: float  # fixed cost of one copy (driver call, DMA setup)

    def seconds(self, nbytes: float) -> float:
        return self.latency_s + nbytes / self.bandwidth

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> LinkProfile:
        _check_keys(data, {"name", "bandwidth", "latency_s", "description"}, where)
        try:
            link = cls(str(data.get("name", where)), float(data["bandwidth"]),
                       float(data["latency_s"]))
        except KeyError as err:
            raise UsageError(f"{where}: missing key {err}") from None
        if link.bandwidth <= 0 or link.latency_s < 0:
            raise UsageError(f"{where}: bandwidth must be > 0 and latency_s >= 0")
        return link


@dataclass(frozen=True)
class FpgaModel:
    """An FPGA's resource budget and how much of it one kernel takes.

    Budget: ``dsp`` blocks, ``bram`` blocks (of ``bram_bytes`` each), ``lut`` logic cells
    (LUTs, or ALMs on Intel parts), ``max_utilization`` (designs rarely route above ~80%).
    Kernel model (assumptions, tune with a board's utilisation reports): a conv/matmul kernel
    runs ``mac_lanes`` multiply-adds per cycle at ``clock_hz`` using ``dsp_per_mac`` DSPs per
    lane; other kernels process ``lanes`` elements per cycle; each kernel costs ``kernel_lut``
    and ``kernel_bram`` (load/store units, control) plus ``lut_per_lane`` per lane, and
    conv/matmul kernels buffer up to ``tile_bytes`` of weights on chip.
    """

    dsp: int
    bram: int
    lut: int
    clock_hz: float
    bram_bytes: int = 4608
    max_utilization: float = 0.8
    mac_lanes: int = 64
    dsp_per_mac: float = 1.0
    lanes: int = 8
    dsp_per_flop: float = 1.0
    kernel_lut: int = 15000
    kernel_bram: int = 16
    lut_per_lane: int = 400
    tile_bytes: int = 65536

    def budget(self) -> tuple[float, float, float]:
        u = self.max_utilization
        return (self.dsp * u, self.bram * u, self.lut * u)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> FpgaModel:
        names = {f for f in cls.__dataclass_fields__}
        _check_keys(data, names, where)
        floats = ("clock_hz", "max_utilization", "dsp_per_mac", "dsp_per_flop")
        values: dict[str, Any] = {k: float(v) if k in floats else int(v) for k, v in data.items()}
        try:
            model = cls(**values)
        except TypeError as err:
            raise UsageError(f"{where}: {err}") from None
        if min(model.dsp, model.bram, model.lut) <= 0 or model.clock_hz <= 0:
            raise UsageError(f"{where}: dsp, bram, lut and clock_hz must be positive")
        if not 0 < model.max_utilization <= 1:
            raise UsageError(f"{where}: max_utilization must be in (0, 1]")
        return model


@dataclass(frozen=True)
class DeviceProfile:
    """Everything the cost model needs about one device.

    name: profile name (``nvidia-h100``); target: the target it serves (cpu, gpu, fpga);
    peak_flops: FLOP/s by dtype (``float32`` is the fallback for dtypes not listed);
    mem_bandwidth: device memory bytes/s; launch_s: cost of one kernel launch;
    dispatch_s: cost of starting one partition (runtime call, synchronisation);
    efficiency: op kind -> fraction of peak FLOP/s reached (compute term);
    mem_efficiency: op kind -> fraction of the memory bandwidth reached (memory term);
    measured_kinds: kinds whose efficiency was measured end to end on this device, memory
    traffic included (calibration): they get no separate memory term;
    launch_per_node: charge ``launch_s`` to every node that is not a view, fused or not
    (the host runtime's per-node overhead, as calibration measures it), instead of to every
    kernel only;
    link: the host link (None for the host CPU); unsupported_ops: op types it cannot run;
    fpga: the resource model (FPGAs only); elementwise_s: op type -> seconds per output
    element of elementwise ops measured by calibration (transcendental functions, which the
    code evaluates per element: their FLOP count says little); memory_bytes: device memory
    capacity (None: not given; the host CPU then uses this machine's RAM, see
    ``memory_capacity``); layout_conversion_s: seconds per element to convert a tensor into
    or out of the blocked layout of the CPU's convs (calibration; 0: no such conversions);
    source: where the profile came from.
    """

    name: str
    target: str
    peak_flops: Mapping[str, float]
    mem_bandwidth: float
    launch_s: float
    dispatch_s: float
    efficiency: Mapping[str, Efficiency] = field(default_factory=dict)
    mem_efficiency: Mapping[str, Efficiency] = field(default_factory=dict)
    measured_kinds: frozenset[str] = frozenset()
    launch_per_node: bool = False
    link: LinkProfile | None = None
    unsupported_ops: frozenset[str] = frozenset()
    fpga: FpgaModel | None = None
    elementwise_s: Mapping[str, float] = field(default_factory=dict)
    memory_bytes: float | None = None
    layout_conversion_s: float = 0.0
    description: str = ""
    source: str = "<memory>"

    def peak(self, dtype: str) -> float:
        return float(self.peak_flops.get(dtype, self.peak_flops["float32"]))

    def memory_capacity(self) -> float | None:
        """Bytes of device memory, or None when unknown (then nothing is checked). The host
        CPU without a figure uses this machine's RAM: what a compile here can count on."""
        if self.memory_bytes is not None:
            return self.memory_bytes
        return host_memory_bytes() if self.target == "cpu" else None

    def compute_efficiency(self, kind: str, k: float = 1.0, n: float = 1.0) -> float:
        eff = _lookup(self.efficiency, kind)
        return eff(k, n) if eff else 1.0

    def memory_efficiency(self, kind: str, n: float = 1.0) -> float:
        """Fraction of the memory bandwidth ``kind`` reaches; tables are over ``n``, the
        elements the op processes (small tensors stay in cache)."""
        eff = _lookup(self.mem_efficiency, kind)
        return eff(1.0, n) if eff else 1.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str,
                     links: Mapping[str, LinkProfile] | None = None) -> DeviceProfile:
        """A profile from a parsed TOML table. ``link`` may name one of ``links``."""
        known = {"name", "target", "description", "peak_flops", "mem_bandwidth", "launch_s",
                 "dispatch_s", "efficiency", "mem_efficiency", "measured_kinds",
                 "launch_per_node", "link", "unsupported_ops", "fpga", "base", "calibration",
                 "memory_bytes", "elementwise_s", "layout_conversion_s"}
        _check_keys(data, known, where)
        missing = [k for k in ("name", "target", "peak_flops", "mem_bandwidth", "launch_s",
                               "dispatch_s") if k not in data]
        if missing:
            raise UsageError(f"{where}: missing keys {missing}")
        target = str(data["target"])
        if target not in TARGET_KINDS:
            raise UsageError(f"{where}: unknown target {target!r}",
                             hint=f"use one of {', '.join(TARGET_KINDS)}")
        peak = {str(k): float(v) for k, v in dict(data["peak_flops"]).items()}
        if "float32" not in peak or min(peak.values()) <= 0:
            raise UsageError(f"{where}: peak_flops needs a positive float32 entry")
        link = _parse_link(data.get("link"), f"{where}.link", links or {})
        if target != "cpu" and link is None:
            raise UsageError(f"{where}: a {target} profile needs a link to the host")
        fpga = None
        if "fpga" in data:
            fpga = FpgaModel.from_mapping(data["fpga"], f"{where}.fpga")
        elif target == "fpga":
            raise UsageError(f"{where}: an fpga profile needs an [fpga] resource table")
        profile = cls(
            name=str(data["name"]),
            target=target,
            peak_flops=peak,
            mem_bandwidth=float(data["mem_bandwidth"]),
            launch_s=float(data["launch_s"]),
            dispatch_s=float(data["dispatch_s"]),
            efficiency=_parse_kinds(data.get("efficiency", {}), f"{where}.efficiency"),
            mem_efficiency=_parse_kinds(data.get("mem_efficiency", {}),
                                        f"{where}.mem_efficiency"),
            measured_kinds=frozenset(str(k) for k in data.get("measured_kinds", ())),
            launch_per_node=bool(data.get("launch_per_node", False)),
            link=link,
            unsupported_ops=frozenset(str(op) for op in data.get("unsupported_ops", ())),
            fpga=fpga,
            elementwise_s={str(op): float(v) for op, v in
                           dict(data.get("elementwise_s", {})).items()},
            memory_bytes=_positive_or_none(data.get("memory_bytes"), f"{where}.memory_bytes"),
            layout_conversion_s=float(data.get("layout_conversion_s", 0.0)),
            description=str(data.get("description", "")),
            source=where,
        )
        unknown = sorted(profile.measured_kinds - set(OP_KINDS))
        if unknown:
            raise UsageError(f"{where}.measured_kinds: unknown op kinds {unknown}")
        if any(v <= 0 for v in profile.elementwise_s.values()):
            raise UsageError(f"{where}.elementwise_s: seconds per element must be positive")
        if profile.mem_bandwidth <= 0 or profile.launch_s < 0 or profile.dispatch_s < 0 \
                or profile.layout_conversion_s < 0:
            raise UsageError(f"{where}: mem_bandwidth must be > 0, overheads >= 0")
        return profile

    def to_mapping(self) -> dict[str, Any]:
        """The TOML table this profile reads back from (used by the calibration cache)."""
        data: dict[str, Any] = {
            "name": self.name, "target": self.target, "description": self.description,
            "peak_flops": dict(self.peak_flops), "mem_bandwidth": self.mem_bandwidth,
            "launch_s": self.launch_s, "dispatch_s": self.dispatch_s,
            "efficiency": {k: e.to_toml() for k, e in self.efficiency.items()},
            "mem_efficiency": {k: e.to_toml() for k, e in self.mem_efficiency.items()},
        }
        if self.unsupported_ops:
            data["unsupported_ops"] = sorted(self.unsupported_ops)
        if self.measured_kinds:
            data["measured_kinds"] = sorted(self.measured_kinds)
        if self.launch_per_node:
            data["launch_per_node"] = True
        if self.memory_bytes is not None:
            data["memory_bytes"] = self.memory_bytes
        if self.layout_conversion_s:
            data["layout_conversion_s"] = self.layout_conversion_s
        if self.elementwise_s:
            data["elementwise_s"] = dict(self.elementwise_s)
        if self.link is not None:
            data["link"] = {"name": self.link.name, "bandwidth": self.link.bandwidth,
                            "latency_s": self.link.latency_s}
        if self.fpga is not None:
            data["fpga"] = {k: getattr(self.fpga, k) for k in self.fpga.__dataclass_fields__}
        return data


def host_memory_bytes() -> float | None:
    """This machine's RAM (``MemTotal`` of /proc/meminfo), or None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return float(line.split()[1]) * 1024  # the figure is in KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _positive_or_none(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: expected a number of bytes, got {raw!r}") from None
    if value <= 0:
        raise UsageError(f"{where}: must be positive")
    return value


def _lookup(table: Mapping[str, Efficiency], kind: str) -> Efficiency | None:
    while kind not in table and kind in KIND_PARENT:
        kind = KIND_PARENT[kind]
    return table.get(kind) or table.get("default")


def _parse_link(raw: Any, where: str, links: Mapping[str, LinkProfile]) -> LinkProfile | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in links:
            raise UsageError(f"{where}: unknown link {raw!r}",
                             hint=f"built-in links: {', '.join(sorted(links))}")
        return links[raw]
    if isinstance(raw, Mapping):
        return LinkProfile.from_mapping(raw, where)
    raise UsageError(f"{where}: expected a link name or a table")


def _parse_kinds(raw: Mapping[str, Any], where: str) -> dict[str, Efficiency]:
    unknown = sorted(set(raw) - set(OP_KINDS) - {"default"})
    if unknown:
        raise UsageError(f"{where}: unknown op kinds {unknown}",
                         hint=f"known kinds: default, {', '.join(OP_KINDS)}")
    return {k: Efficiency.parse(v, f"{where}.{k}") for k, v in raw.items()}


def _check_keys(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{where}: unknown keys {unknown}",
                         hint=f"known keys: {', '.join(sorted(known))}")
