"""Which path the layers take (quant/kernels/dispatch.py): the device, the override, triton's presence."""

import pytest
import torch

from lightning_hybrid.quant import kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_dispatch_follows_the_device_and_the_override(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    assert kernels.use_triton(torch.zeros(1)) is False  # a CPU tensor: the torch reference
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "triton")
    assert kernels.use_triton(torch.zeros(1)) is True
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
    assert kernels.use_triton(torch.zeros(1, device=DEVICE)) is False
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "cuda")
    with pytest.raises(ValueError, match="LIGHTNING_HYBRID_KERNELS must be one of .*got 'cuda'"):
        kernels.use_triton(torch.zeros(1))


def test_the_cpu_int8_path_is_only_for_cpu_tensors_with_int8_activations(monkeypatch):
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    x = torch.zeros(2, 4)
    assert kernels.use_int8_cpu(x, 8) is kernels.cpu.available()
    assert not kernels.use_int8_cpu(x, 12) and not kernels.use_int8_cpu(x, None)
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")  # the reference everywhere
    assert not kernels.use_int8_cpu(x, 8)


def test_without_triton_the_override_says_what_to_install(monkeypatch):
    monkeypatch.setattr(kernels.dispatch, "triton_installed", lambda: False)
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "triton")
    with pytest.raises(ImportError, match="triton is not installed: pip install triton"):
        kernels.use_triton(torch.zeros(1))
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "auto")
    assert kernels.use_triton(torch.zeros(1)) is False
