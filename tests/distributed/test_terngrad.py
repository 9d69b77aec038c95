"""TernGrad maths against its definition; the hook and callback in 2-process CPU DDP runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_hybrid import GradientCompression
from lightning_hybrid.distributed import TernGradState, ternarize

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_compression.py"


def test_ternarize_is_unbiased_and_ternary():
    # oracle: E[s * code] = x (TernGrad eq. 2); over 20,000 draws the mean is within 5 standard errors
    x = torch.tensor([0.5, -0.25, 1.0, -1.0, 0.0, 0.1])
    scale = torch.tensor([1.0])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([ternarize(x, scale, g) for _ in range(20_000)]).float()
    assert set(draws.unique().tolist()) <= {-1.0, 0.0, 1.0}
    stderr = (x.abs() * (1 - x.abs())).sqrt() / 20_000**0.5
    assert ((draws.mean(0) - x).abs() <= 5 * stderr + 1e-6).all()
    assert torch.equal(draws[:, 2], torch.ones(20_000)) and not draws[:, 4].any()  # |x| = s: always; 0: never


def test_zero_gradient_gives_zero_codes():
    assert not ternarize(torch.zeros(5), torch.zeros(1)).any()


def test_error_feedback_adds_the_last_residual_and_survives_rebuilt_buckets():
    state = TernGradState()
    state.residuals[0] = torch.tensor([0.5, -0.5])
    torch.testing.assert_close(state.compensate(0, torch.tensor([1.0, 1.0])), torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(state.compensate(0, torch.ones(3)), torch.ones(3))  # another shape: dropped
    assert torch.equal(TernGradState(error_feedback=False).compensate(0, torch.ones(2)), torch.ones(2))


def test_bad_method_names_the_argument():
    with pytest.raises(ValueError, match=r"`method` must be one of 'terngrad', 'fp16', 'none'; got 'int4'"):
        GradientCompression("int4")


def _ddp_run(method, out):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), method, str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")


@pytest.mark.slow
def test_two_process_ddp_with_ternary_gradients(tmp_path):
    runs = {m: _ddp_run(m, tmp_path / m) for m in ("none", "terngrad")}
    for rank0, rank1 in runs.values():  # every rank applied the same averaged gradient
        for key in (k for k in rank0 if not k.startswith("_")):
            torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
        assert torch.isfinite(rank0["_loss"])
    plain, ternary = runs["none"][0], runs["terngrad"][0]
    per_step_fp32 = float(plain["_bytes"]) / float(plain["_steps"])
    assert per_step_fp32 == 4 * float(plain["_grad_numel"])  # DDP's fp32 all-reduce: 4 bytes an element
    per_step_ternary = float(ternary["_bytes"]) / float(ternary["_steps"])
    assert float(ternary["_grad_numel"]) <= per_step_ternary < 1.01 * float(ternary["_grad_numel"])  # 1 byte + scales
    assert any(not torch.equal(plain[k], ternary[k]) for k in plain if not k.startswith("_"))


def test_bounding_clips_each_piece_at_its_own_spread():
    from lightning_hybrid.distributed.terngrad import bounded

    a, b = torch.tensor([0.0, 0.0, 0.0, 10.0]), torch.tensor([1.0, -1.0])
    clipped = bounded([a, b], 1.0)
    torch.testing.assert_close(clipped[0], torch.tensor([0.0, 0.0, 0.0, float(a.std(correction=0))]))
    torch.testing.assert_close(clipped[1], b)  # within one standard deviation (1.0) already
    assert bounded([a], None)[0] is a
    with pytest.raises(ValueError, match=r"`clip_sigma` must be a positive finite number or None, got 0"):
        GradientCompression(clip_sigma=0)


@pytest.mark.slow
def test_resume_gives_each_rank_back_its_own_residuals_and_random_stream(tmp_path):
    script = SCRIPT.parent / "ddp_terngrad_resume.py"
    for phase in ("save", "resume"):
        result = subprocess.run(
            [sys.executable, str(script), phase, str(tmp_path)], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, phase + result.stderr[-3000:]
    saved = [torch.load(tmp_path / f"saved_rank{r}.pt") for r in (0, 1)]
    restored = [torch.load(tmp_path / f"restored_rank{r}.pt") for r in (0, 1)]
    assert any(k.startswith("residual.") for k in saved[0]) and "generator.cpu" in saved[0]
    assert not torch.equal(saved[0]["residual.0"], saved[1]["residual.0"])  # the ranks' memories differ
    for rank in (0, 1):  # oracle: what each rank held when the checkpoint was written
        assert restored[rank].keys() == saved[rank].keys()
        for key, value in saved[rank].items():
            torch.testing.assert_close(restored[rank][key], value, rtol=0, atol=0, msg=f"rank {rank} {key}")


def test_resuming_with_another_method_is_an_error():
    with pytest.raises(ValueError, match="trained with GradientCompression\\(method='fp16'\\)"):
        GradientCompression("terngrad").load_state_dict({"method": "fp16"})


@pytest.mark.slow
def test_two_bit_wire_sends_a_quarter_and_gives_the_int8_wire_result_exactly(tmp_path):
    int8, packed = _ddp_run("terngrad", tmp_path / "int8")[0], _ddp_run("terngrad:2bit", tmp_path / "2bit")
    for key in (k for k in int8 if not k.startswith("_")):
        # oracle: the int8 all-reduce; both sum the same integer codes exactly, so the weights are identical
        torch.testing.assert_close(packed[0][key], int8[key], rtol=0, atol=0, msg=key)
        torch.testing.assert_close(packed[1][key], int8[key], rtol=0, atol=0, msg=key)
    numel, steps = float(int8["_grad_numel"]), float(int8["_steps"])
    per_step = float(packed[0]["_bytes"]) / steps
    assert numel / 4 <= per_step < numel / 4 + 0.01 * numel  # a quarter byte an element, plus padding and scales


def test_unknown_wire_is_named():
    with pytest.raises(ValueError, match=r"`wire` must be one of 'int8', '2bit'; got 'int4'"):
        GradientCompression(wire="int4")


@pytest.mark.slow
def test_one_scale_a_bucket_sends_fewer_scales_and_ranks_still_agree(tmp_path):
    per_parameter = _ddp_run("terngrad:int8:parameter", tmp_path / "p")[0]
    rank0, rank1 = _ddp_run("terngrad", tmp_path / "b")  # the default: one scale a bucket
    for key in (k for k in rank0 if not k.startswith("_")):  # the shared scale keeps the ranks' sums identical
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    numel, steps = int(rank0["_grad_numel"]), int(rank0["_steps"])
    scale_bytes = {
        name: int(run["_bytes"]) // steps - numel for name, run in (("parameter", per_parameter), ("bucket", rank0))
    }
    # oracle: an fp32 scale per parameter tensor against one per DDP bucket (this small model fills one bucket)
    n_tensors = int(per_parameter["_grad_tensors"])
    assert scale_bytes == {"parameter": 4 * n_tensors, "bucket": 4}, scale_bytes
    assert any(not torch.equal(rank0[k], per_parameter[k]) for k in rank0 if not k.startswith("_"))


def test_unknown_scale_granularity_is_named():
    with pytest.raises(ValueError, match=r"`scale_per` must be one of 'parameter', 'bucket'; got 'layer'"):
        GradientCompression(scale_per="layer")
