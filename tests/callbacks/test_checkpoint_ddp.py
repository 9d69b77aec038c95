import pytest
import torch

from helpers.ddp import run_script
from lightning_hybrid.callbacks.checkpoint import STOP_CHECK_EVERY


@pytest.mark.slow
def test_two_process_ddp_stops_together_saves_once_and_resumes_exactly(tmp_path):
    for phase in ("full", "cut", "resume"):
        run_script("ddp_checkpoint.py", phase, tmp_path)
    for rank in (0, 1):
        full, cut, resumed = (torch.load(tmp_path / f"{p}{rank}.pt") for p in ("full", "cut", "resume"))
        # Rank 0 alone was asked to stop; both stopped at the next agreed check, with one checkpoint.
        assert cut["_step"].item() == STOP_CHECK_EVERY
        assert torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)["global_step"] == STOP_CHECK_EVERY
        # oracle: the uninterrupted run: the same batches on this rank, then the same weights, exactly
        seen = torch.cat([cut["_batches"], resumed["_batches"]])
        torch.testing.assert_close(seen, full["_batches"], rtol=0, atol=0)
        for key in full:
            if not key.startswith("_batches"):
                torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=0, msg=key)
    rank0, rank1 = (torch.load(tmp_path / f"full{r}.pt")["_batches"] for r in (0, 1))
    assert not torch.equal(rank0, rank1)  # each rank saw its own shard
