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


@pytest.mark.slow
def test_gguf_export_benchmark_sizes_every_format_and_decodes_on_every_backend(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    pytest.importorskip("llama_cpp", reason="llama.cpp not installed: pip install 'lightning_hybrid[llamacpp]'")
    run = tmp_path / "run"
    sizes = ["model.hidden_size=256", "model.intermediate_size=256", "model.num_hidden_layers=1"]
    train = ["-m", "lightning_hybrid.train", "model=llama", *sizes, "trainer.max_steps=5", "data.max_bytes=100000"]
    _run([*train, "data.val_windows=48", "callbacks.progress_bar=null", f"hydra.run.dir={run}"], tmp_path)
    _run(["benchmarks/gguf_export.py", str(run), "--rounds", "1", "--out", str(tmp_path / "out")], tmp_path)
    results = json.loads((tmp_path / "out" / "results_1thread.json").read_text())
    assert results["bytes"]["gguf TQ1_0"] < results["bytes"]["gguf TQ2_0"] < results["bytes"]["gguf F16"]
    assert set(results["decode"]) == {
        "fp32 PyTorch (the latent weights)",
        "PackedBitLinear (ours)",
        "llama.cpp TQ2_0",
        "llama.cpp TQ1_0",
        "llama.cpp F16",
    }
    assert all(row["tokens_per_s"] > 0 for row in results["decode"].values())
    assert results["decode"]["PackedBitLinear (ours)"]["greedy_tokens_equal_to_ours"] == 63  # itself


def test_step_overhead_benchmark_times_every_row(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/step_overhead.py", "--rounds", "2"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.endswith(" ms")]
    assert len(rows) == 4 and all(float(line.rsplit(": ", 1)[1].removesuffix(" ms")) > 0 for line in rows)


def test_compile_benchmark_reports_ratios_and_the_payback_from_its_runs():
    """The report's arithmetic on given runs (the runs themselves are main-job runs, compile=true among them,
    which tests/jobs/test_train.py covers)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compile_step import report

    def runs(median_ms, first_s):
        return [
            {"median_step_s": median_ms / 1e3, "first_step_s": first_s},
            {"median_step_s": 1.0, "first_step_s": 0.1},
        ]

    results = {
        "fp32, eager": runs(40, 0.1),
        "ternary, eager": runs(50, 0.1),
        "fp32, compiled": runs(44, 10.1),
        "ternary, compiled": runs(45, 20.1),
    }
    text = report(results, type("Args", (), {"steps": 200, "rounds": 2})())
    assert "| ternary / fp32, eager | 1.250x |" not in text  # medians over both rounds, not the first alone
    medians = {k: (v[0]["median_step_s"] + 1.0) / 2 for k, v in results.items()}
    eager = medians["ternary, eager"] / medians["fp32, eager"]
    assert f"| ternary / fp32, eager | {eager:.3f}x |" in text
    saved = medians["ternary, eager"] - medians["ternary, compiled"]
    assert f"| ternary: compile pays back after | {20.0 / saved:,.0f} steps |" in text
    assert "| fp32: compile pays back after | never (no step is faster) |" in text
