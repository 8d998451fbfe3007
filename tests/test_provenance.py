"""The record of what a training run ran on, from /proc/cpuinfo-style text and GPU details."""

import pytest

from stages.lib import provenance

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2
"""
BFLOAT16 = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu avx avx2 avx512f avx512bw avx512_bf16 avx512_vnni
"""


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    def write(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(provenance, "CPUINFO", path)

    return write


def test_cpu_record_names_the_model_and_its_bfloat16_and_avx512(cpuinfo):
    cpuinfo(AVX2_ONLY)
    assert provenance.cpu() == {"name": "AMD EPYC 7B13", "bfloat16": False, "avx512": False}
    cpuinfo(BFLOAT16)
    assert provenance.cpu() == {"name": "AMD EPYC 9R14", "bfloat16": True, "avx512": True}


def test_precision_falls_back_to_float32_without_the_hardware(cpuinfo, capsys):
    cpuinfo(AVX2_ONLY)
    assert provenance.precision_policy("mixed_bfloat16", []) == "float32"
    assert provenance.precision_policy("mixed_float16", []) == "float32"
    assert "no bfloat16 hardware here; training in float32" in capsys.readouterr().out
    cpuinfo(BFLOAT16)
    assert provenance.precision_policy("mixed_bfloat16", []) == "mixed_bfloat16"
    assert provenance.precision_policy("float32", []) == "float32"


def test_gpus_decide_precision_by_compute_capability(cpuinfo):
    cpuinfo(BFLOAT16)  # the CPU's bfloat16 does not count once GPUs train
    volta, ampere = ("Tesla V100", (7, 0)), ("NVIDIA A100", (8, 0))
    assert provenance.precision_policy("mixed_bfloat16", [volta]) == "float32"
    assert provenance.precision_policy("mixed_bfloat16", [ampere, ampere]) == "mixed_bfloat16"
    assert provenance.precision_policy("mixed_float16", [volta]) == "mixed_float16"


def test_device_is_every_gpu_or_else_the_cpu(cpuinfo):
    cpuinfo(AVX2_ONLY)
    assert provenance.device([]) == {"type": "CPU", "name": "AMD EPYC 7B13", "bfloat16": False,
                                     "avx512": False, "count": 1}
    ampere, volta = ("NVIDIA A100", (8, 0)), ("Tesla V100", (7, 0))
    assert provenance.device([ampere, ampere]) == {
        "type": "GPU", "name": "NVIDIA A100", "count": 2, "bfloat16": True,
        "compute_capability": "8.0"}
    assert provenance.device([volta])["bfloat16"] is False


def test_report_says_whether_the_gpu_computed_in_bfloat16():
    from stages.report import what_ran

    record = {"precision": {"used": "mixed_bfloat16", "requested": "mixed_bfloat16"},
              "xla": {"used": False}, "op_determinism": True,
              "distribute": {"replicas": 1, "requested": "none"},
              "device": provenance.device([("NVIDIA H200", (9, 0))]),
              "versions": {"keras": "3"}}
    last_epoch = {"epoch_seconds": 2.0, "images_per_second": 30000.0}
    assert "1 GPU (NVIDIA H200, with bfloat16)" in what_ran(record, last_epoch)
    record["device"] = provenance.device([("Tesla V100", (7, 0))])
    assert "1 GPU (Tesla V100, without bfloat16)" in what_ran(record, last_epoch)


def test_versions_name_what_ran():
    versions = provenance.versions()
    assert set(versions) == {"python", "tensorflow", "keras", "dvc", "dvclive"}
    assert all(value[0].isdigit() for value in versions.values())
