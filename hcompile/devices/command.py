"""``hcompile devices [--calibrate] [--devices FILE.toml]``: show the device profiles.

Lists the profiles a compile would use (the host CPU, calibrated or not; the GPU and FPGA
profiles, or those of ``--devices``) and every built-in profile. ``--calibrate`` measures
the host CPU and hcompile's CPU code first and caches the result for this machine.
The CLI registers this command with ``add_parser(subparsers)``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("devices", help="show device profiles; --calibrate measures this host")
    p.add_argument("--calibrate", action="store_true",
                   help="measure this machine's CPU and hcompile's CPU code, cache the profile")
    p.add_argument("--devices", metavar="FILE.toml|NAMES",
                   help="a devices file or built-in profile names, as for compile")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hcompile.devices import builtin_names, builtin_profile, calibrate, load_devices

    console = Console(quiet=getattr(args, "quiet", False))
    if args.calibrate:
        with console.status("calibrating...") as status:
            result = calibrate.calibrate(lambda msg: status.update(f"calibrating: {msg}"))
            path = calibrate.save(result)
        bench = Table(title="calibration microbenchmarks", title_justify="left")
        for column in ("benchmark", "ms", "GFLOP/s", "GB/s"):
            bench.add_column(column)
        for b in result.benches:
            bench.add_row(b["name"], f"{b['ms']:.4g}", f"{b.get('gflops', 0):.3g}",
                          f"{b.get('gbytes', 0):.3g}")
        console.print(bench)
        console.print(f"wrote {path}")
    devices = load_devices(args.devices)
    active = Table(title="profiles used by compile", title_justify="left")
    for column in ("target", "profile", "fp32 peak", "memory", "link", "source"):
        active.add_column(column)
    for target, p in devices.profiles.items():
        link = f"{p.link.name} {p.link.bandwidth / 1e9:.3g} GB/s" if p.link else "host"
        active.add_row(target, p.name, f"{p.peak('float32') / 1e12:.3g} TFLOP/s",
                       f"{p.mem_bandwidth / 1e9:,.0f} GB/s", link, p.source)
    console.print(active)
    table = Table(title="built-in profiles", title_justify="left")
    for column in ("name", "target", "description"):
        table.add_column(column)
    for name in builtin_names():
        p = builtin_profile(name)
        table.add_row(name, p.target, p.description)
    console.print(table)
    if devices["cpu"].name == "host-generic":
        console.print("note: the host CPU is not calibrated; run `hcompile devices --calibrate`")
    return 0
