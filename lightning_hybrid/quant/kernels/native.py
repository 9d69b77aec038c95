"""A compiled CPU kernel for the packed inference layer: csrc/int8_linear.c, built with the system's C
compiler on first use and loaded with ctypes.

At batch 1 a small packed layer is all overhead in eager PyTorch: the per-token quantization and the
scaling around the int8 matmul are a dozen small ops of 1-4 us each, and torch._int_mm itself costs
~35 us at one token on a 128 -> 384 layer and 11 ms at 4096 -> 4096, four times fp32's nn.Linear, on
the AVX2 CPU measured (benchmarks/packed_cpu.py). The C kernel does the whole layer in one call: the
reference's arithmetic in its order (the outputs are equal bit for bit), with AVX2 dot products where
the compiler offers them, reading each group of weight rows once for up to 16 tokens.

The shared library is built once per machine into the cache directory (LIGHTNING_HYBRID_CACHE, else
$XDG_CACHE_HOME/lightning_hybrid, else ~/.cache/lightning_hybrid), named by a hash of the source, the
compiler, its flags and the CPU's feature flags (-march=native code must not run on another CPU). The
compiler is $CC, else cc, else gcc. A missing compiler or a failed build raises here; PackedBitLinear
reaches this module only through kernels/guard.py, which then keeps the layer on its torch path with
one warning.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from lightning_hybrid.quant.reference import EPS

SOURCE = Path(__file__).parent / "csrc" / "int8_linear.c"
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC")
# The most tokens a call sends to the C kernel; None: no limit. The kernel is faster than torch._int_mm's
# GEMM at every size measured, 1 to 64 tokens (benchmarks/packed_cpu.py).
MAX_TOKENS: int | None = None


class _Layer(ctypes.Structure):
    """lh_layer of csrc/int8_linear.c."""

    _fields_ = [
        ("codes", ctypes.c_void_p),
        ("w_scale", ctypes.c_void_p),
        ("bias", ctypes.c_void_p),
        ("k", ctypes.c_int64),
        ("n", ctypes.c_int64),
        ("per_row", ctypes.c_int32),
        ("q", ctypes.c_int32),
        ("eps", ctypes.c_float),
        ("packed2", ctypes.c_int32),
    ]


def cache_dir() -> Path:
    root = os.environ.get("LIGHTNING_HYBRID_CACHE")
    if root:
        return Path(root) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightning_hybrid" / "kernels"


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler found (set CC, or install gcc)")
    return cc


def _cpu_flags() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line for line in lines if line.startswith(("flags", "Features"))), "")


def library_path(cc: str) -> Path:
    key = "\n".join([SOURCE.read_text(), cc, " ".join(FLAGS), platform.machine(), _cpu_flags()])
    return cache_dir() / f"int8_linear_{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def _build(cc: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)  # then a rename: concurrent builds are safe
    os.close(fd)
    try:
        done = subprocess.run([cc, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{cc} failed to build {SOURCE.name}: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@functools.cache
def library() -> ctypes.CDLL:
    """The built kernel, compiled on the first call of a machine (module doc); raises if it cannot be."""
    cc = compiler()
    path = library_path(cc)
    if not path.exists():
        _build(cc, path)
    lib = ctypes.CDLL(str(path))
    lib.lh_int8_linear.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.lh_int8_linear.restype = ctypes.c_int
    return lib


class Int8Linear:
    """The kernel bound to one layer's weights, scales and bias (kept alive here; read at each call).

    `weights`: int8 codes (out, in) of any width, or uint8 bytes of the "2bit" layout (out, ceil(in / 4))
    of ternary or 2-bit codes, which the kernel reads as they are (a quarter of the memory traffic).
    """

    def __init__(
        self,
        weights: torch.Tensor,
        w_scale: torch.Tensor,
        bias: torch.Tensor | None,
        act_bits: int,
        in_features: int | None = None,
    ):
        packed2 = weights.dtype == torch.uint8
        if weights.dtype not in (torch.int8, torch.uint8) or weights.dim() != 2 or not weights.is_contiguous():
            raise ValueError(
                f"`weights` must be contiguous 2-d int8 codes or uint8 2bit bytes, got {weights.dtype} "
                f"{tuple(weights.shape)}."
            )
        n, k = weights.shape[0], weights.shape[1] if in_features is None else in_features
        if packed2 != (in_features is not None) or (packed2 and weights.shape[1] != -(-k // 4)):
            raise ValueError(f"`in_features` ({in_features!r}) goes with 2bit bytes of (out, ceil(in / 4)), only.")
        for name, t, size in (("w_scale", w_scale, (1, n)), ("bias", bias, (n,))):
            if t is not None and (t.dtype != torch.float32 or not t.is_contiguous() or t.numel() not in size):
                raise ValueError(f"`{name}` must be contiguous fp32 with {' or '.join(map(str, size))} values.")
        if not 2 <= act_bits <= 8:
            raise ValueError(f"`act_bits` must be in [2, 8], got {act_bits!r}.")
        # aliases of the memory the kernel reads: it stays allocated even if a tensor's .data is replaced
        self._keep = tuple(None if t is None else t.detach() for t in (weights, w_scale, bias))
        self.in_features, self.out_features = k, n
        self._layer = _Layer(
            weights.data_ptr(),
            w_scale.data_ptr(),
            None if bias is None else bias.data_ptr(),
            k,
            n,
            int(w_scale.numel() > 1),
            2 ** (act_bits - 1) - 1,
            EPS,
            int(packed2),
        )
        self._address = ctypes.addressof(self._layer)
        self._run = library().lh_int8_linear

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: fp32 (..., in) on the CPU -> (..., out) fp32. Written for a call of a few microseconds: the
        checks the kernel's memory safety needs, one allocation, one ctypes call."""
        shape = x.shape
        if not shape or shape[-1] != self.in_features or x.dtype is not torch.float32 or not x.is_cpu:
            raise ValueError(f"int8_linear takes fp32 CPU (..., {self.in_features}), got {x.dtype} {tuple(shape)}.")
        if not x.is_contiguous():  # the kernel reads rows of `in` values
            x = x.contiguous()
        # torch.empty(m, n) parses faster than torch.empty(*shape) (1.2 against 1.8 us), and m is usual
        out = (
            torch.empty(shape[0], self.out_features) if len(shape) == 2 else torch.empty(*shape[:-1], self.out_features)
        )
        if self._run(self._address, x.data_ptr(), out.data_ptr(), x.numel() // self.in_features):
            raise MemoryError("int8_linear could not allocate its activation buffer")
        return out
