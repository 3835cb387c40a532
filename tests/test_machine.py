"""ser_attacks.machine: the processor's name from /proc/cpuinfo (wall times compare only on one machine)."""
from __future__ import annotations

import os

from ser_attacks import machine


def test_cpu_model_reads_the_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n")
    assert machine.cpu_model(info) == "AMD EPYC 7B13"


def test_cpu_model_without_cpuinfo_falls_back_to_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    assert machine.cpu_model(tmp_path / "absent") == "x86_64"
    (tmp_path / "nameless").write_text("processor\t: 0\n")         # e.g. some ARM kernels: no model name line
    assert machine.cpu_model(tmp_path / "nameless") == "x86_64"


def test_device_name_names_the_cpu_and_its_cores(monkeypatch):
    monkeypatch.setattr(machine, "cpu_model", lambda: "Some CPU")
    name = machine.device_name()
    assert name.startswith("GPU: ") or name == f"CPU: Some CPU ({os.cpu_count()} cores)"
