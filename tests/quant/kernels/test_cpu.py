"""The CPU int8 matmul (quant/kernels/cpu.py) against exact integer arithmetic (the oracle: an int64 matmul)."""

import pytest
import torch

from lightning_hybrid.quant.kernels import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason="this torch has no torch._int_mm")


@pytest.mark.parametrize(("m", "k", "n"), [(1, 37, 11), (17, 64, 33), (32, 129, 8)])
def test_int_sums_are_the_exact_integer_products(m, k, n):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-127, 128, (m, k), generator=g).to(torch.int8)
    w = torch.randint(-1, 2, (n, k), generator=g).to(torch.int8)
    sums = cpu.int_sums(x, w)
    assert sums.dtype == torch.int32
    assert torch.equal(sums.long(), x.long() @ w.long().t())


def test_no_tokens_give_an_empty_result():
    out = cpu.int_sums(torch.zeros(0, 8, dtype=torch.int8), torch.zeros(3, 8, dtype=torch.int8))
    assert out.shape == (0, 3) and out.dtype == torch.int32
