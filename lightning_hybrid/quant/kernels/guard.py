"""Safe dispatch: under LIGHTNING_HYBRID_KERNELS=auto, a Triton kernel serves a key (the kernel, device,
dtypes, bits) only after it has run once on a small input and matched the torch reference there; so
does the C kernel of the packed layer on a CPU (kernels/native.py, keyed by its activation bits). A
kernel that fails to compile on this GPU (or to import: a broken triton install), raises, or gives other
numbers sends that key to the reference for the rest of the process, with one warning that names the
kernel, the key, the error and the override; so does an error on a later call (a compile error for a
shape the trial did not cover). LIGHTNING_HYBRID_KERNELS=triton stays strict: nothing is checked and an
error raises where it happens.

The trials are small (33 tokens, 64 -> 48 for the training layer; 2 and 33 tokens for the packed layer,
so both its GEMV and GEMM kernels run) and run once per key, so they cost a few kernel launches per
process. Torch only: triton is imported inside a trial, where its failure is caught.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lightning_hybrid.quant import formats
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels.dispatch import requested

Trial = Callable[[], list[tuple[torch.Tensor, torch.Tensor]]]  # (kernel output, reference output) pairs

TRIAL_TOKENS = (2, 33)  # below and above the GEMV/GEMM switch of kernels/bitlinear.py
TRIAL_IN, TRIAL_OUT = 64, 48
# The largest difference to the reference a working kernel shows, relative to the output's largest value:
# the kernels equal the reference to rounding in fp32 (tests/quant/kernels), and bf16/fp16 outputs round
# to 8 or 11 bits. A miscompiled kernel is off by far more.
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-4}
LOW_PRECISION_TOLERANCE = 3e-2

_verdicts: dict[tuple, bool] = {}
# Counts the withdrawals of the C kernel's verdicts (native_failed, reset): PackedBitLinear reuses a kernel
# it bound without asking native_trusted again only while this is unchanged.
native_epoch = 0


def reset() -> None:
    """Forget every verdict (tests; a process that changed its GPU setup)."""
    global native_epoch
    _verdicts.clear()
    native_epoch += 1


NATIVE = "int8_linear (C, CPU)"  # kernels/native.py


def _warn(kernel: str, key: tuple, why: str, when: str) -> None:
    strict = "" if kernel == NATIVE else " LIGHTNING_HYBRID_KERNELS=triton makes the error raise."
    warnings.warn(
        f"lightning_hybrid: the kernel {kernel} failed {when} for {key}: {why}. This key runs on the torch path "
        f"from now on (slower; the same values to rounding). LIGHTNING_HYBRID_KERNELS=torch silences this.{strict}",
        stacklevel=4,
    )


def call(kernel: str, key: tuple, run: Callable[[], torch.Tensor]) -> torch.Tensor | None:
    """`run()`; under "auto", an error it raises (a compile error for a shape the trial did not cover)
    instead marks the key as failed, warns and returns None, for the caller's reference path."""
    if requested() == "triton":
        return run()
    try:
        return run()
    except Exception as err:  # see _failure
        _verdicts[(kernel, *key)] = False
        _warn(kernel, key, f"{type(err).__name__}: {err}", "on a call")
        return None


def trusted(kernel: str, key: tuple, trial: Trial) -> bool:
    """Whether `kernel` may serve `key`: always under "triton", else its first trial's verdict."""
    if requested() == "triton":
        return True
    full = (kernel, *key)
    if full not in _verdicts:
        why = _failure(trial)
        if why is not None:
            _warn(kernel, key, why, "its check")
        _verdicts[full] = why is None
    return _verdicts[full]


def _failure(trial: Trial) -> str | None:
    """Why the trial failed (its error, or how far its output is from the reference), or None."""
    try:
        pairs = trial()
    except Exception as err:  # a compile error, a launch failure, an import error: anything stops the kernel
        return f"{type(err).__name__}: {err}"
    for got, want in pairs:
        scale = want.float().abs().max().clamp_min(1e-6)
        off = float((got.float() - want.float()).abs().max() / scale) if got.shape == want.shape else float("inf")
        if not off <= TOLERANCE.get(want.dtype, LOW_PRECISION_TOLERANCE):  # a NaN fails too
            return f"its output differs from the torch reference by {off:.3g} of the output's largest value"
    return None


def _random(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device, dtype)


def reference_linear(x, weight, bias, bits: float, act_bits: int | None) -> torch.Tensor:
    """BitLinear's output at full quantization on the torch reference (its CPU path)."""
    if act_bits is not None and act_bits <= 8:
        return ref.integer_linear(x, weight, bias, bits, act_bits)
    xq = x if act_bits is None else ref.quantize_activation(x, act_bits)
    return F.linear(xq, ref.quantize_weight(weight, bits), bias)


def reference_packed(x, codes, scale, bias, bits: float, act_bits: int | None, weight_dtype) -> torch.Tensor:
    """PackedBitLinear's output on the torch reference, from its codes and stored scales."""
    width = formats.width(bits)
    if act_bits is None or act_bits > 8:
        xq = x if act_bits is None else ref.quantize_activation(x, act_bits)
        w_scale = scale.reshape(-1, 1) if width.per_row_scale else scale[0]
        return F.linear(xq, ref.dequantize(codes, w_scale, weight_dtype), bias)
    x_codes, x_scale = ref.activation_codes(x, act_bits)
    sums = ref.code_sums(x_codes, codes, width.max_code)
    return ref.scale_sums(sums, x_scale, scale, bias, ref.output_dtype(x))


def bit_linear_key(x: torch.Tensor, weight: torch.Tensor, bits: float, act_bits: int | None) -> tuple:
    return (str(x.device), x.dtype, weight.dtype, bits, act_bits)


def _packed_linear_key(x: torch.Tensor, bits: float, act_bits: int | None, weight_dtype: torch.dtype) -> tuple:
    return (str(x.device), x.dtype, weight_dtype, bits, act_bits)


def _bit_linear_trial(x: torch.Tensor, weight: torch.Tensor, bits: float, act_bits: int | None) -> Trial:
    def trial() -> list[tuple[torch.Tensor, torch.Tensor]]:
        from lightning_hybrid.quant.kernels.bitlinear import bit_linear

        a = _random((TRIAL_TOKENS[1], TRIAL_IN), x.device, x.dtype, 0)
        w = _random((TRIAL_OUT, TRIAL_IN), x.device, weight.dtype, 1)
        b = _random((TRIAL_OUT,), x.device, weight.dtype, 2)
        return [(bit_linear(a, w, b, bits, act_bits), reference_linear(a, w, b, bits, act_bits))]

    return trial


def _packed_linear_trial(x: torch.Tensor, bits: float, act_bits: int | None, weight_dtype: torch.dtype) -> Trial:
    def trial() -> list[tuple[torch.Tensor, torch.Tensor]]:
        from lightning_hybrid.quant.kernels.bitlinear import packed_linear

        codes, scale = ref.weight_codes(_random((TRIAL_OUT, TRIAL_IN), x.device, torch.float32, 1), bits)
        packed, scale = formats.pack(codes, "2bit"), scale.reshape(-1).float()  # as PackedBitLinear stores them
        bias = _random((TRIAL_OUT,), x.device, weight_dtype, 2)
        pairs = []
        for tokens in TRIAL_TOKENS:
            a = _random((tokens, TRIAL_IN), x.device, x.dtype, 3)
            got = packed_linear(a, packed, scale, bias, TRIAL_IN, act_bits)
            pairs.append((got, reference_packed(a, codes, scale, bias, bits, act_bits, weight_dtype)))
        return pairs

    return trial


def _native_trial(act_bits: int) -> Trial:
    """Ternary codes with one scale and int8 codes with a scale per row, at 1 and 3 tokens; 70 -> 45 leaves
    tails past the kernel's 32-code steps and 4-row passes."""

    def trial() -> list[tuple[torch.Tensor, torch.Tensor]]:
        from lightning_hybrid.quant.kernels.native import Int8Linear

        pairs = []
        for bits in (1.58, 8):
            codes, scale = ref.weight_codes(_random((45, 70), torch.device("cpu"), torch.float32, 1), bits)
            scale, bias = scale.reshape(-1).float().contiguous(), _random((45,), torch.device("cpu"), torch.float32, 2)
            kernel = Int8Linear(codes.contiguous(), scale, bias, act_bits)
            for tokens in (1, 3):
                a = _random((tokens, 70), torch.device("cpu"), torch.float32, 3)
                pairs.append((kernel(a), reference_packed(a, codes, scale, bias, bits, act_bits, torch.float32)))
        return pairs

    return trial


def native_trusted(act_bits: int) -> bool:
    """Whether the C kernel may serve this activation width: its first trial's verdict (module doc).
    Looked up first: it runs at every decoding step."""
    verdict = _verdicts.get((NATIVE, act_bits))
    if verdict is None:
        verdict = trusted(NATIVE, (act_bits,), _native_trial(act_bits))
    return verdict


def native_failed(act_bits: int, err: Exception) -> None:
    """An error of the C kernel on a call, as call() treats one: the torch path from now on, one warning."""
    global native_epoch
    _verdicts[(NATIVE, act_bits)] = False
    native_epoch += 1
    _warn(NATIVE, (act_bits,), f"{type(err).__name__}: {err}", "on a call")


def native_int8_linear(x: torch.Tensor, bind: Callable[[], Callable | None], act_bits: int) -> torch.Tensor | None:
    """PackedBitLinear's CPU forward on the C kernel for x (..., in), fp32, or None where the kernel
    cannot be built or failed its check. `bind()` gives the kernel bound to the layer (kernels/native.py),
    or None where the layer cannot use it. Only reached under "auto" (the caller checks)."""
    if not native_trusted(act_bits):
        return None
    try:
        kernel = bind()
        return None if kernel is None else kernel(x)
    except Exception as err:  # as in call(): the torch path from now on
        native_failed(act_bits, err)
        return None


def bit_linear_trusted(x: torch.Tensor, weight: torch.Tensor, bits: float, act_bits: int | None) -> bool:
    """Whether BitLinear's Triton path may run for this input and weight (module doc)."""
    return trusted(
        "bit_linear", bit_linear_key(x, weight, bits, act_bits), _bit_linear_trial(x, weight, bits, act_bits)
    )


def packed_linear_trusted(x: torch.Tensor, bits: float, act_bits: int | None, weight_dtype: torch.dtype) -> bool:
    """Whether PackedBitLinear's Triton path ("2bit" bytes) may run for this input (module doc)."""
    key = _packed_linear_key(x, bits, act_bits, weight_dtype)
    return trusted("packed_linear", key, _packed_linear_trial(x, bits, act_bits, weight_dtype))


def bit_linear(x, weight, bias, bits: float, act_bits: int | None) -> torch.Tensor | None:
    """BitLinear's forward (lam = 1) on the Triton kernel, or None where this key runs on the reference."""
    key = bit_linear_key(x, weight, bits, act_bits)
    if not trusted("bit_linear", key, _bit_linear_trial(x, weight, bits, act_bits)):
        return None
    from lightning_hybrid.quant.kernels.bitlinear import bit_linear as kernel

    return call("bit_linear", key, lambda: kernel(x, weight, bias, bits, act_bits))


def packed_linear(
    x, packed, scale, bias, in_features: int, bits: float, act_bits: int | None, weight_dtype: torch.dtype
) -> torch.Tensor | None:
    """PackedBitLinear's forward on the Triton kernel, or None where this key runs on the reference."""
    key = _packed_linear_key(x, bits, act_bits, weight_dtype)
    if not trusted("packed_linear", key, _packed_linear_trial(x, bits, act_bits, weight_dtype)):
        return None
    from lightning_hybrid.quant.kernels.bitlinear import packed_linear as kernel

    return call("packed_linear", key, lambda: kernel(x, packed, scale, bias, in_features, act_bits))
