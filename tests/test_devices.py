"""hcompile.devices: built-in profiles, --devices files and names, the calibration cache."""

from __future__ import annotations

import tomllib

import pytest

from hcompile.devices import builtin_names, builtin_profile, load_devices
from hcompile.devices import calibrate as cal
from hcompile.errors import UsageError

EXPECTED = {"nvidia-h100", "nvidia-a100", "nvidia-t4", "alveo-u250", "intel-arria10-gx",
            "host-generic", "host"}


def test_every_builtin_profile_loads_with_its_published_figures():
    assert set(builtin_names()) >= EXPECTED
    h100, t4 = builtin_profile("nvidia-h100"), builtin_profile("nvidia-t4")
    assert h100.peak("float32") == 67e12 and h100.mem_bandwidth == 3.35e12
    assert t4.peak("float32") == 8.1e12 and t4.link is not None
    assert t4.link.name == "pcie-gen3-x16"
    assert h100.peak("int32") == h100.peak("float32")  # unknown dtypes: the float32 figure
    u250 = builtin_profile("alveo-u250").fpga
    assert u250 is not None and (u250.dsp, u250.lut, u250.bram) == (12288, 1728000, 2688)
    a10 = builtin_profile("intel-arria10-gx").fpga
    assert a10 is not None and (a10.dsp, a10.bram) == (1518, 2713)
    for name in builtin_names():
        p = builtin_profile(name)
        assert p.peak("float32") > 0 and p.mem_bandwidth > 0
        assert (p.link is None) == (p.target == "cpu"), name
        assert (p.fpga is not None) == (p.target == "fpga"), name


def test_default_set_and_names(monkeypatch, tmp_path):
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))  # not calibrated
    devices = load_devices()
    assert {t: p.name for t, p in devices.profiles.items()} == {
        "cpu": "host-generic", "gpu": "nvidia-a100", "fpga": "alveo-u250"}
    named = load_devices("nvidia-h100, intel-arria10-gx")
    assert named["gpu"].name == "nvidia-h100" and named["fpga"].name == "intel-arria10-gx"
    with pytest.raises(UsageError, match="unknown device profile 'nvidia-v100'"):
        load_devices("nvidia-v100")


def test_a_devices_file_starts_from_a_builtin_and_overrides_fields(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("""
[links.my-link]
bandwidth = 2e9
latency_s = 5e-5

[gpu]
base = "nvidia-t4"
link = "my-link"
dispatch_s = 1e-4

[fpga]
base = "intel-arria10-gx"
fpga = {dsp = 1000}
unsupported_ops = ["Softmax"]
""")
    devices = load_devices(path)
    gpu, fpga = devices["gpu"], devices["fpga"]
    assert gpu.name == "nvidia-t4" and gpu.dispatch_s == 1e-4 and gpu.source == str(path)
    assert gpu.link is not None and (gpu.link.bandwidth, gpu.link.latency_s) == (2e9, 5e-5)
    assert fpga.fpga is not None
    assert fpga.fpga.dsp == 1000 and fpga.fpga.bram == 2713  # merged key by key
    assert fpga.unsupported_ops == {"Softmax"}


@pytest.mark.parametrize("text, message", [
    ('[gpu]\nbase = "nvidia-t4"\npeak_flop = 1\n', "unknown keys \\['peak_flop'\\]"),
    ('[gpu]\nbase = "alveo-u250"\n', "uses a fpga profile"),
    ('[gpu]\nbase = "nvidia-t4"\nlink = "pcie-gen9"\n', "unknown link 'pcie-gen9'"),
    ('[gpu]\nbase = "nvidia-t4"\nefficiency = {gemm = 0.5}\n', "unknown op kinds"),
    ('[gpu]\nbase = "nvidia-t4"\nefficiency = {conv = 3.0}\n', "must be in"),
    ("[gpu\n", "not valid TOML"),
])
def test_bad_devices_files_are_user_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_devices(path)


def test_missing_devices_file_is_a_user_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_devices(tmp_path / "nope.toml")


def _fake_calibration() -> cal.Calibration:
    table = builtin_profile("host-generic").to_mapping()
    table.update(name="host", description="test calibration",
                 calibration={"cpu": "test", "benches": [{"name": "x", "ms": 1.5}]})
    table["peak_flops"] = {"float32": 42e9}
    return cal.Calibration(table, [])


def test_calibration_is_cached_per_machine_under_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))
    assert cal.cached_host_table() is None
    path = cal.save(_fake_calibration())
    assert path.parent == tmp_path / "devices" and path.name.startswith("host-")
    assert cal.cache_path() == path
    host = load_devices()["cpu"]
    assert host.name == "host" and host.peak("float32") == 42e9
    assert host.source == str(path)
    # Another machine (or compiler version) has another key: not calibrated there.
    monkeypatch.setattr(cal, "codegen_fingerprint", lambda: "another code generator")
    cal.machine_info.cache_clear()
    assert cal.cached_host_table() is None
    cal.machine_info.cache_clear()
    monkeypatch.setattr(cal, "machine_info", lambda: {"cpu": "other"})
    assert cal.cached_host_table() is None


def test_toml_writer_round_trips():
    data = {"name": "h", "n": 3, "x": 1.5e-7, "flag": True, "list": [1.0, 2.0],
            "efficiency": {"conv": {"k": [16.0, 64.0], "value": [[0.5], [0.1]]}, "default": 1.0},
            "calibration": {"cpu": 'AMD "EPYC"', "benches": [{"name": "a b", "ms": 0.5}]}}
    assert tomllib.loads(cal.dump_toml(data)) == data


@pytest.mark.slow  # ~1 min: compiles and times ~45 single-op models
def test_calibration_measures_this_host(monkeypatch, tmp_path):
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))
    result = cal.calibrate()
    path = cal.save(result)
    host = load_devices()["cpu"]
    assert host.source == str(path)
    assert 1e9 < host.peak("float32") < 1e14
    assert 1e9 < host.mem_bandwidth < 1e13
    assert 0 < host.launch_s < 1e-3 and 0 < host.dispatch_s < 1e-2
    for kind in ("conv", "depthwise", "matmul", "matvec"):
        eff = host.efficiency[kind]
        assert eff.k and eff.n and all(0 < v <= 1 for row in eff.value for v in row), kind
    names = [b["name"] for b in result.benches]
    assert "conv k=16 n=7x7" in names and "matvec 60 x 1x64x128" in names
    assert all(b["ms"] > 0 for b in result.benches)


def test_the_devices_command_lists_the_profiles_in_use(monkeypatch, tmp_path, capsys):
    import argparse

    from hcompile.devices import command

    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(tmp_path))
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["devices", "--devices", "nvidia-t4"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "nvidia-t4" in out and "host-generic" in out and "alveo-u250" in out
    assert "not calibrated" in out
