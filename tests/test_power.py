"""Power probes on fake sysfs trees in the drivers' real layouts, tegrastats lines in the real
formats (a fake tegrastats executable replays them), and the energy sampler."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from edgesr.errors import ConfigError, DataError
from edgesr.profile.minimal import SensorError, UsageError
from edgesr.profile.power import (
    Ina3221HwmonProbe,
    Ina3221IioProbe,
    NvmlProbe,
    PowerSampler,
    RaplProbe,
    TegrastatsProbe,
    detect_probe,
    integrate,
    make_probe,
    parse_tegrastats,
    probe_table,
)

# Lines as tegrastats prints them (one per interval), per JetPack generation.
JP4_NANO = (
    "RAM 1766/3964MB (lfb 197x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [24%@1224,15%@1224,13%@1224,10%@1224] EMC_FREQ 0% GR3D_FREQ 0% PLL@21C CPU@25C "
    "PMIC@100C GPU@23.5C AO@33.5C thermal@24.5C POM_5V_IN 2545/2547 POM_5V_GPU 0/0 POM_5V_CPU 549/529"
)
JP4_AGX_XAVIER = (
    "RAM 2476/15823MB (lfb 2848x4MB) SWAP 0/7911MB (cached 0MB) CPU [2%@1190,1%@1190,off,off,"
    "off,off,off,off] EMC_FREQ 0% GR3D_FREQ 0% AO@31C GPU@30.5C Tdiode@33.75C PMIC@100C "
    "AUX@30C CPU@31.5C thermal@30.85C Tboard@31C GPU 0/0 CPU 311/311 SOC 933/933 CV 0/0 "
    "VDDRQ 155/155 SYS5V 1047/1047"
)
JP5_ORIN_NANO = (
    "07-14-2025 10:29:36 RAM 2147/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) "
    "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] GR3D_FREQ 0% cpu@47.687C soc2@46.718C "
    "soc0@47.468C gpu@48.625C tj@48.625C soc1@48.25C VDD_IN 4556mW/4556mW "
    "VDD_CPU_GPU_CV 483mW/483mW VDD_SOC 1451mW/1451mW"
)
JP6_AGX_ORIN_MAX = (
    "11-02-2025 08:12:01 RAM 4023/30536MB (lfb 5555x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [0%@1190,0%@1190,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] cpu@45.5C tj@45.5C "
    "VDD_GPU_SOC 3188mW/3188mW/3600mW VDD_CPU_CV 797mW/797mW/900mW VIN_SYS_5V0 3221mW/3221mW/3300mW "
    "VDDQ_VDD2_1V8AO 502mW/502mW/510mW"
)
MIXED_UNITS = "GR3D_FREQ 1% VDD_IN 3913mW/3922mW VDD_CPU_GPU_CV 598mW/598 VDD_SOC 1238mW/1237mW"


@pytest.mark.parametrize(
    "line,expected",
    [
        (JP4_NANO, {"POM_5V_IN": 2.545, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.549}),
        (
            JP4_AGX_XAVIER,
            {"GPU": 0.0, "CPU": 0.311, "SOC": 0.933, "CV": 0.0, "VDDRQ": 0.155, "SYS5V": 1.047},
        ),
        (JP5_ORIN_NANO, {"VDD_IN": 4.556, "VDD_CPU_GPU_CV": 0.483, "VDD_SOC": 1.451}),
        (
            JP6_AGX_ORIN_MAX,
            {
                "VDD_GPU_SOC": 3.188,
                "VDD_CPU_CV": 0.797,
                "VIN_SYS_5V0": 3.221,
                "VDDQ_VDD2_1V8AO": 0.502,
            },
        ),
        (MIXED_UNITS, {"VDD_IN": 3.913, "VDD_CPU_GPU_CV": 0.598, "VDD_SOC": 1.238}),
        ("RAM 2228/3964MB (lfb 1x4MB) SWAP 0/1982MB (cached 0MB) EMC_FREQ 0%@1600", {}),
        ("VDD_IN 4.5W/4.2W", {"VDD_IN": 4.5}),
    ],
)
def test_parse_tegrastats(line: str, expected: dict[str, float]) -> None:
    assert parse_tegrastats(line) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# Fake sysfs trees


def hwmon_tree(root: Path, sensors: dict[str, list[tuple[str, int, int]]]) -> dict[str, Path]:
    """JetPack 5/6 hwmon: per sensor ``<bus-addr>/hwmon/hwmonN/in{N}_label|in{N}_input|curr{N}_input``,
    with the 'sum of shunt voltages' channel 7 and the unlabelled shunt inputs 4-6 of the driver."""
    dirs = {}
    for i, (bus, channels) in enumerate(sensors.items()):
        d = root / f"sys/bus/i2c/drivers/ina3221/{bus}/hwmon/hwmon{i + 3}"
        d.mkdir(parents=True)
        (d / "name").write_text("ina3221\n")
        (d / "update_interval").write_text("140\n")
        for n, (label, mv, ma) in enumerate(channels, 1):
            (d / f"in{n}_label").write_text(label + "\n")
            (d / f"in{n}_input").write_text(f"{mv}\n")
            (d / f"curr{n}_input").write_text(f"{ma}\n")
            (d / f"in{n + 3}_input").write_text("5120\n")  # shunt voltage (uV), no label
        (d / "in7_label").write_text("sum of shunt voltages\n")
        (d / "in7_input").write_text("12000\n")
        dirs[bus] = d
    (root / "sys/bus/i2c/drivers/ina3221/bind").write_text("")
    return dirs


ORIN_NANO = {
    "1-0040": [("VDD_IN", 5072, 1182), ("VDD_CPU_GPU_CV", 5056, 100), ("VDD_SOC", 5064, 285)]
}


def test_ina3221_hwmon_reads_input_rail(tmp_path: Path) -> None:
    hwmon_tree(tmp_path, ORIN_NANO)
    probe = Ina3221HwmonProbe(root=tmp_path)
    assert probe.available(), probe.reason
    assert probe.rail == "VDD_IN" and probe.rails == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    rails = probe.read_rails_w()
    assert rails["VDD_IN"] == pytest.approx(5.072 * 1.182)
    assert probe.read_power_w() == pytest.approx(5.072 * 1.182)
    soc = Ina3221HwmonProbe(root=tmp_path, rail="vdd_soc")
    assert soc.available() and soc.read_power_w() == pytest.approx(5.064 * 0.285)
    nope = Ina3221HwmonProbe(root=tmp_path, rail="VDD_GPU")
    assert not nope.available() and "VDD_IN, VDD_CPU_GPU_CV, VDD_SOC" in nope.reason


def test_ina3221_hwmon_without_input_rail_sums_all(tmp_path: Path) -> None:
    # AGX Orin: two sensors, rails that split the module's supply, and an unconnected channel.
    hwmon_tree(
        tmp_path,
        {
            "1-0040": [
                ("VDD_GPU_SOC", 5000, 600),
                ("VDD_CPU_CV", 5000, 160),
                ("VIN_SYS_5V0", 5000, 640),
            ],
            "1-0041": [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 5000, 100), ("NC", 0, 0)],
        },
    )
    probe = Ina3221HwmonProbe(root=tmp_path)
    assert probe.available(), probe.reason
    assert probe.rail == "sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO)"
    assert probe.read_power_w() == pytest.approx(5.0 * (0.6 + 0.16 + 0.64 + 0.1))


def test_ina3221x_iio_jetpack4(tmp_path: Path) -> None:
    d = tmp_path / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    d.mkdir(parents=True)
    for n, (name, mw) in enumerate([("POM_5V_IN", 2545), ("POM_5V_GPU", 40), ("POM_5V_CPU", 549)]):
        (d / f"rail_name_{n}").write_text(name + "\n")
        (d / f"in_power{n}_input").write_text(f"{mw}\n")
        (d / f"in_current{n}_input").write_text("500\n")
        (d / f"in_voltage{n}_input").write_text("5000\n")
        (d / f"polling_delay_{n}").write_text("0 ms\n")
    probe = Ina3221IioProbe(root=tmp_path)
    assert probe.available(), probe.reason
    assert probe.rail == "POM_5V_IN" and probe.read_power_w() == pytest.approx(2.545)
    assert probe.read_rails_w()["POM_5V_CPU"] == pytest.approx(0.549)


def rapl_tree(root: Path, energy_uj: int, max_uj: int = 262143328850) -> Path:
    base = root / "sys/class/powercap"
    pkg = base / "intel-rapl:0"
    core = base / "intel-rapl:0:0"
    psys = base / "intel-rapl:1"
    for zone, name in ((pkg, "package-0"), (core, "core"), (psys, "psys")):
        zone.mkdir(parents=True)
        (zone / "name").write_text(name + "\n")
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
        (zone / "enabled").write_text("1\n")
    return pkg / "energy_uj"


def test_rapl_sums_packages_and_handles_wrap_around(tmp_path: Path) -> None:
    counter = rapl_tree(tmp_path, energy_uj=262_143_000_000)
    probe = RaplProbe(root=tmp_path)
    assert probe.available(), probe.reason
    assert probe.counter and probe.rail == "package-0"  # not core (a sub-zone) nor psys
    assert probe.read_energy_j() == 0.0
    counter.write_text("262143200000\n")
    assert probe.read_energy_j() == pytest.approx(0.2)
    counter.write_text("500000\n")  # wrapped at max_energy_range_uj
    assert probe.read_energy_j() == pytest.approx(
        0.2 + (500_000 + 262_143_328_850 - 262_143_200_000) / 1e6
    )


def test_rapl_falls_back_to_psys(tmp_path: Path) -> None:
    base = tmp_path / "sys/class/powercap/intel-rapl:0"
    base.mkdir(parents=True)
    (base / "name").write_text("psys\n")
    (base / "energy_uj").write_text("1000\n")
    (base / "max_energy_range_uj").write_text("262143328850\n")
    probe = RaplProbe(root=tmp_path)
    assert probe.available() and probe.rail == "psys"


# --------------------------------------------------------------------------------------------
# Unreadable and absent sensors


def test_garbage_in_a_sensor_file_is_an_error(tmp_path: Path) -> None:
    dirs = hwmon_tree(tmp_path, ORIN_NANO)
    (dirs["1-0040"] / "curr1_input").write_text("-EIO\n")
    with pytest.raises(SensorError, match=r"curr1_input holds '-EIO', not a number"):
        Ina3221HwmonProbe(root=tmp_path).available()
    with pytest.raises(DataError, match="not a number"):
        detect_probe("auto", root=tmp_path)


def test_a_sensor_file_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    counter = rapl_tree(tmp_path, energy_uj=5)
    counter.unlink()
    counter.mkdir()
    with pytest.raises(SensorError, match="cannot read power sensor file"):
        RaplProbe(root=tmp_path).available()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_root_only_rapl_is_skipped_with_the_reason(tmp_path: Path) -> None:
    counter = rapl_tree(tmp_path, energy_uj=5)
    counter.chmod(0o000)
    probe = RaplProbe(root=tmp_path)
    assert not probe.available() and "root" in probe.reason
    assert detect_probe("auto", root=tmp_path)[0] is None


def test_detect_probe(tmp_path: Path) -> None:
    probe, reason = detect_probe("auto", root=tmp_path)
    assert probe is None and reason.startswith("no usable power sensor")
    assert detect_probe("none", root=tmp_path) == (
        None,
        "power measurement disabled (--power none)",
    )
    with pytest.raises(DataError, match="'ina3221' cannot be used here: no "):
        detect_probe("ina3221", root=tmp_path)
    with pytest.raises(ConfigError, match="unknown power probe 'inaa3221'"):
        detect_probe("inaa3221", root=tmp_path)
    hwmon_tree(tmp_path, ORIN_NANO)
    rapl_tree(tmp_path, energy_uj=5)
    assert detect_probe("auto", root=tmp_path)[0].name == "ina3221"  # the board's rails first
    assert detect_probe("rapl", root=tmp_path)[0].name == "rapl"
    rows = {r["probe"]: r for r in probe_table(root=tmp_path)}
    assert rows["ina3221"]["available"] and rows["rapl"]["available"]
    assert not rows["ina3221x"]["available"] and rows["ina3221x"]["detail"].startswith("no ")


def test_nvml_unavailable_says_why() -> None:
    probe = NvmlProbe()
    if probe.available():
        probe.close()
        pytest.skip("an NVIDIA GPU with NVML is present")
    assert "nvidia-ml-py" in probe.reason or "NVML" in probe.reason


@pytest.mark.gpu
def test_nvml_measures_a_real_gpu() -> None:
    probe = NvmlProbe()
    if not probe.available():
        pytest.skip(probe.reason)
    with probe:
        sampler = PowerSampler(probe, 0.05)
        sampler.start()
        time.sleep(0.5)
        result = sampler.result(frames=10)
    assert result["measured"] and 5 < result["mean_w"] < 1500 and result["window_s"] >= 0.5


# --------------------------------------------------------------------------------------------
# Integration


def test_integrate_trapezoid_and_counter() -> None:
    sampled = integrate([(0.0, 2.0), (1.0, 4.0), (2.0, 4.0)], counter=False, frames=7)
    assert sampled["energy_j"] == pytest.approx(7.0) and sampled["mean_w"] == pytest.approx(3.5)
    assert sampled["peak_w"] == 4.0 and sampled["energy_per_frame_j"] == pytest.approx(1.0)
    counted = integrate([(0.0, 10.0), (1.0, 12.0), (2.0, 15.0)], counter=True, frames=5)
    assert counted["energy_j"] == pytest.approx(5.0) and counted["peak_w"] == pytest.approx(3.0)
    with pytest.raises(SensorError, match="two readings"):
        integrate([(0.0, 1.0)], counter=False, frames=1)


def test_sampler_integrates_a_changing_rail(tmp_path: Path) -> None:
    dirs = hwmon_tree(tmp_path, {"1-0040": [("VDD_IN", 5000, 1000)]})
    curr = dirs["1-0040"] / "curr1_input"
    probe = Ina3221HwmonProbe(root=tmp_path)
    assert probe.available()
    sampler = PowerSampler(probe, interval_s=0.01)
    sampler.start()
    time.sleep(0.3)
    curr.write_text("2000\n")  # 5 W -> 10 W halfway
    time.sleep(0.3)
    result = sampler.result(frames=60)
    assert result["peak_w"] == pytest.approx(10.0)
    assert 6.0 < result["mean_w"] < 9.0  # about 7.5 W, give or take one sampling interval
    assert result["energy_j"] == pytest.approx(result["mean_w"] * result["window_s"])
    assert result["rails_mean_w"]["VDD_IN"] == pytest.approx(result["mean_w"], rel=0.1)


def test_sampler_differences_an_energy_counter(tmp_path: Path) -> None:
    counter = rapl_tree(tmp_path, energy_uj=262_143_000_000)
    probe = RaplProbe(root=tmp_path)
    assert probe.available()
    sampler = PowerSampler(probe, interval_s=10.0)  # only the start and end readings
    sampler.start()
    counter.write_text("1671150\n")  # 2 J later, across a wrap
    time.sleep(0.05)
    result = sampler.result(frames=4)
    assert result["method"] == "energy counter" and result["samples"] == 2
    assert result["energy_j"] == pytest.approx(2.0) and result[
        "energy_per_frame_j"
    ] == pytest.approx(0.5)


def test_sampler_reports_a_sensor_failing_mid_window(tmp_path: Path) -> None:
    dirs = hwmon_tree(tmp_path, ORIN_NANO)
    probe = Ina3221HwmonProbe(root=tmp_path)
    assert probe.available()
    sampler = PowerSampler(probe, interval_s=0.01)
    sampler.start()
    (dirs["1-0040"] / "in1_input").write_text("garbage\n")
    time.sleep(0.1)
    with pytest.raises(SensorError, match="in1_input holds 'garbage'"):
        sampler.result(frames=1)


# --------------------------------------------------------------------------------------------
# tegrastats, through a stand-in executable that prints recorded lines


def fake_tegrastats(tmp_path: Path, lines: list[str]) -> list[str]:
    script = tmp_path / "tegrastats"
    script.write_text(
        "import sys, time\n"
        f"lines = {lines!r}\n"
        "i = 0\n"
        "while True:\n"
        "    print(lines[i % len(lines)], flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.02)\n"
    )
    return [sys.executable, str(script)]


def test_tegrastats_probe_follows_the_process(tmp_path: Path) -> None:
    probe = TegrastatsProbe(command=fake_tegrastats(tmp_path, [JP5_ORIN_NANO]), interval_ms=20)
    assert probe.available()
    with probe:
        assert probe.rail == "VDD_IN" and probe.read_power_w() == pytest.approx(4.556)
        sampler = PowerSampler(probe, interval_s=0.02)
        sampler.start()
        time.sleep(0.2)
        result = sampler.result(frames=10)
        assert result["mean_w"] == pytest.approx(4.556) and result["probe"] == "tegrastats"
    assert probe._proc is None and not any(t.name == "tegrastats" for t in threading.enumerate())


def test_tegrastats_jetpack4_sum_and_silence(tmp_path: Path) -> None:
    probe = TegrastatsProbe(command=fake_tegrastats(tmp_path, [JP4_AGX_XAVIER]), interval_ms=20)
    with probe:
        assert probe.rail.startswith("sum(GPU+CPU+SOC")
        assert probe.read_power_w() == pytest.approx(0.311 + 0.933 + 0.155 + 1.047)
    silent = TegrastatsProbe(
        command=fake_tegrastats(tmp_path, ["RAM 1/2MB SWAP 0/0MB"]), first_line_timeout_s=0.3
    )
    with pytest.raises(SensorError, match="reported no power rails; it printed: 'RAM 1/2MB"):
        silent.open()
    assert not TegrastatsProbe(command=["/nonexistent/tegrastats"]).available()
    with pytest.raises(UsageError, match="unknown power probe 'tegra-stats'"):
        make_probe("tegra-stats")
