"""GradientCompression: a DDP communication hook by name, in 2-process CPU DDP runs (bytes sent, ranks that
agree, the 2-bit wire, shared scales, resume of each rank's residuals) and its argument checks."""

import pytest
import torch

from helpers.ddp import rank_states, run_script
from lightning_hybrid import GradientCompression


def test_bad_method_names_the_argument():
    with pytest.raises(ValueError, match=r"`method` must be one of 'terngrad', 'fp16', 'none'; got 'int4'"):
        GradientCompression("int4")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The two ranks' states after a 2-process DDP run with `method`; each method runs once per module
    (a run is a fresh pair of processes, about 13 s)."""
    done = {}

    def run(method):
        if method not in done:
            out = tmp_path_factory.mktemp(method.replace(":", "_"))
            run_script("ddp_compression.py", method, out)
            done[method] = rank_states(out)
        return done[method]

    return run


@pytest.mark.slow
def test_two_process_ddp_with_ternary_gradients(ddp_run):
    runs = {m: ddp_run(m) for m in ("none", "terngrad")}
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


@pytest.mark.slow
def test_resume_gives_each_rank_back_its_own_residuals_and_random_stream(tmp_path):
    for phase in ("save", "resume"):
        run_script("ddp_terngrad_resume.py", phase, tmp_path)
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
def test_two_bit_wire_sends_a_quarter_and_gives_the_int8_wire_result_exactly(ddp_run):
    int8, packed = ddp_run("terngrad")[0], ddp_run("terngrad:2bit")
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
def test_one_scale_a_bucket_sends_fewer_scales_and_ranks_still_agree(ddp_run):
    per_parameter = ddp_run("terngrad:int8:parameter")[0]
    rank0, rank1 = ddp_run("terngrad")  # the default: one scale a bucket
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
