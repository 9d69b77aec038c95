"""The benchmark scripts run as shipped: the GPU kernels one in its CPU smoke mode, the CPU one briefly, the
transformers export comparison whole."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_gpu_benchmark_smoke_mode_runs_every_section(tmp_path):
    pytest.importorskip("triton")
    _run(["benchmarks/kernels_gpu.py", "--smoke", "--out", str(tmp_path)], tmp_path)
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert len(report["decode"]) == 2 and len(report["prefill"]) == 2
    for row in report["decode"] + report["prefill"]:  # the kernels against F.linear on the same numbers (fp32 here)
        assert row["packed_bf16_act_max_rel_err"] < 1e-5 and row["packed_int8_act_max_rel_err"] < 1e-5
    assert set(report["training_step_ms"]) == {"unquantized", "ternary_kernels", "ternary_reference"}
    assert "## QAT training step" in (tmp_path / "gpu.md").read_text()


def test_cpu_latency_benchmark_writes_its_table(tmp_path):
    _run(["benchmarks/packed_cpu.py", "--repeats", "1", "--calls", "2", "--out", str(tmp_path)], tmp_path)
    table = next(tmp_path.glob("cpu_latency_*thread.md")).read_text()
    assert "| 4096 -> 4096 |" in table and "| 128 -> 384 |" in table


def test_transformers_export_benchmark_compares_in_both_dtypes():
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from transformers_export import compare
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    with torch._dynamo.config.patch(disable=True):
        fp32, bf16 = compare(torch.float32), compare(torch.bfloat16)
    assert fp32.startswith("float32") and float(fp32.split("difference ")[1].split(",")[0]) < 1e-5
    assert bf16.startswith("bfloat16") and float(bf16.split("difference ")[1].split(",")[0]) < 3e-2
