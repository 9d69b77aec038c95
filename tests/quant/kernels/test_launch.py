"""What every kernel launcher checks first (quant/kernels/_launch.py): float inputs, named; any leading
dimensions, flattened; the interpreter switch."""

import pytest
import torch

from lightning_hybrid.quant.kernels._launch import check_float, interpreted, rows_of


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_float_inputs_pass_contiguous(dtype):
    x = torch.zeros(4, 6, dtype=dtype).t()
    out = check_float(x, "x")
    assert out.is_contiguous() and torch.equal(out, x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int8])
def test_other_dtypes_are_refused_by_name(dtype):
    with pytest.raises(TypeError, match=f"`w` must be fp32, fp16 or bf16, got {dtype}"):
        check_float(torch.zeros(2, dtype=dtype), "w")


def test_rows_flatten_every_leading_dimension_and_allow_zero_tokens():
    x = torch.arange(2 * 3 * 5.0).reshape(2, 3, 5)
    assert torch.equal(rows_of(x), x.reshape(6, 5))
    assert rows_of(torch.zeros(0, 7)).shape == (0, 7)


def test_the_interpreter_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert interpreted()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not interpreted()
