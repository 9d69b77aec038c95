"""PackedBitLinear: the inference layer that `load_packed` puts where a BitLinear was."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.quant import formats, kernels
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels import guard, native, ops

_NATIVE_INPUTS = (torch.float32, torch.bfloat16, torch.float16)


class PackedBitLinear(nn.Module):
    """A linear layer that stores its weight packed: codes in a quant/pack.py layout plus fp32 scales (one
    for 1 and 1.58 bits, one per output row for 2, 4 and 8 bits).

    The forward pass is the QAT layer's at lam = 1 (quant/reference.py), on one of four paths chosen as
    quant/kernels/__init__.py says:
      * reference: with activations of <= 8 bits, exact integer sums of code products scaled afterwards
        (reference.integer_linear); otherwise dequantize, then F.linear. Equal to the QAT layer bit for bit.
      * CPU, activations of <= 8 bits: one call of a C kernel that quantizes the activations and takes the
        integer sums (kernels/native.py; ternary and 2-bit "2bit" layers read their packed bytes as they
        are; under torch.compile it is a custom op, kernels/ops.py). The reference's bits. Where the
        kernel cannot be built (no C compiler), and for other layouts under torch.compile, the same
        integer sums from torch._int_mm: the same bits, slower.
      * CUDA, "2bit" layout: Triton kernels read the packed bytes and unpack them in registers; equal to
        the reference to floating-point rounding.
    The int8 paths of other layouts unpack the codes once and keep them (1 byte a weight, not saved in the
    state dict; `cache_codes=False` unpacks them on every call instead, keeping only the packed bytes).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bits: float,
        layout: str,
        act_bits: int | None,
        bias: torch.Tensor | None = None,
        weight_dtype: torch.dtype = torch.float32,
        cache_codes: bool = True,
    ) -> None:
        super().__init__()
        self.cache_codes = cache_codes
        self._codes, self._codes_key = None, None
        self._native, self._native_key = None, None  # the C kernel bound to the codes, scales and bias
        self._fast = None  # (packed, scale, bias, guard.native_epoch) when _native was bound: _fast_native
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.layout, self.act_bits, self.weight_dtype = bits, layout, act_bits, weight_dtype
        self.width, self.storage = formats.width(bits), formats.layout(layout)
        self._reads_2bit = layout == "2bit" and self.width.max_code == 1  # the C kernel reads these bytes as they are
        shape = self.storage.packed_shape((out_features, in_features))
        self.register_buffer("weight_packed", torch.zeros(shape, dtype=torch.uint8))
        scales = out_features if self.width.per_row_scale else 1
        self.register_buffer("weight_scale", torch.ones(scales, dtype=torch.float32))
        self.register_parameter(
            "bias", None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        )

    def codes(self) -> torch.Tensor:
        """The int8 weight codes (out, in), from the cache while the packed bytes are unchanged."""
        packed = self._buffers["weight_packed"]  # not Module.__getattr__, ~1 us a lookup (see _native_forward)
        key = (packed.data_ptr(), packed._version, packed.device)
        if self._codes_key == key:
            return self._codes
        codes = self.storage.decoded(packed, (self.out_features, self.in_features)).contiguous()
        if self.cache_codes:
            self._codes, self._codes_key = codes, key
        return codes

    def _apply(self, fn, recurse=True):
        self._codes, self._codes_key = None, None  # a move or cast leaves the caches behind
        self._native, self._native_key, self._fast = None, None, None
        return super()._apply(fn, recurse)

    def unpacked_weight(self) -> torch.Tensor:
        codes = self.codes()
        scale = self.weight_scale.reshape(-1, 1) if self.width.per_row_scale else self.weight_scale[0]
        return ref.dequantize(codes, scale, self.weight_dtype)

    def _bound_native(self) -> native.Int8Linear | None:
        """The C kernel bound to this layer's weights, scales and bias: the "2bit" bytes themselves for
        ternary and 2-bit codes, else the int8 codes. None for scales or a bias not in fp32 (a module cast
        to another dtype: the torch path handles them). Rebound when any of them is replaced or, for the
        int8 codes, when the packed bytes change (codes())."""
        scale, bias = self._buffers["weight_scale"], self._parameters.get("bias")
        packed = self._buffers["weight_packed"]
        key = (packed.data_ptr(), packed._version, scale.data_ptr(), 0 if bias is None else bias.data_ptr())
        if self._native_key != key:
            direct = self._reads_2bit
            weights = packed if direct else self.codes()
            fp32 = scale.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)
            k = self.in_features if direct else None
            self._native = native.Int8Linear(weights, scale, bias, self.act_bits, k) if fp32 else None
            self._native_key = key
        kernel = self._native
        self._fast = None if kernel is None else (packed, scale, bias, guard.native_epoch)
        return kernel

    def _fast_native(self, x: torch.Tensor) -> torch.Tensor | None:
        """The C kernel for the decoding case with the fewest checks, or None for forward's general path: an
        fp32 CPU input in eager mode without autocast, LIGHTNING_HYBRID_KERNELS unset, and the kernel that
        the general path bound (_bound_native) still bound to these tensors with its verdict standing. At
        batch 1 on a 128 -> 128 layer the general path's checks cost as much as the kernel itself."""
        fast = self._fast
        if fast is None or torch.compiler.is_compiling() or not x.is_cpu or x.dtype is not torch.float32:
            return None
        (packed, scale, bias, epoch), key = fast, self._native_key
        if (  # the data_ptr() checks: `t.data = other` keeps the object and its _version
            packed is not self._buffers["weight_packed"]
            or key[1] != packed._version
            or key[0] != packed.data_ptr()
            or scale is not self._buffers["weight_scale"]
            or key[2] != scale.data_ptr()
            or bias is not self._parameters.get("bias")
            or (bias is not None and key[3] != bias.data_ptr())
            or epoch != guard.native_epoch
            or native.MAX_TOKENS is not None
            or kernels.overridden()
            or torch.is_autocast_enabled("cpu")
        ):
            return None
        try:
            return self._native(x)
        except Exception:  # a wrong shape, memory: the general path reports it
            return None

    def _native_forward(self, x: torch.Tensor) -> torch.Tensor | None:
        """The C kernel's output for a CPU input with activations of <= 8 bits, or None for every other case.

        The kernel quantizes fp32 activations, as the reference does after x.float(); its fp32 output is
        then cast to the reference's output dtype. Attributes are read from _buffers and _parameters
        directly, and the checks are ordered cheapest first: at batch 1 on a small layer every
        microsecond of Python shows (benchmarks/packed_cpu.py)."""
        act_bits = self.act_bits
        if not x.is_cpu or act_bits is None or act_bits > 8:
            return None
        fp32 = x.dtype is torch.float32
        if not (fp32 or x.dtype in _NATIVE_INPUTS):
            return None
        if torch.compiler.is_compiling():
            return self._compiled_native(x)
        limit = native.MAX_TOKENS
        if (limit is not None and x.numel() > limit * self.in_features) or (
            kernels.overridden() and kernels.requested() != "auto"
        ):
            return None
        if not guard.native_trusted(act_bits):
            return None
        try:  # guard.native_int8_linear, inlined: a call less at every step
            kernel = self._bound_native()
            out = None if kernel is None else kernel(x if fp32 else x.float())
        except Exception as err:
            guard.native_failed(act_bits, err)
            return None
        if out is None or (fp32 and not torch.is_autocast_enabled("cpu")):
            return out
        return out.to(ref.output_dtype(x))

    def _compiled_native(self, x: torch.Tensor) -> torch.Tensor | None:
        """Under torch.compile: the C kernel as a custom op (kernels/ops.py) for layers that read their 2bit
        bytes with fp32 scales; None (the torch path, traced) for the rest."""
        bias = self.bias
        if not self._reads_2bit or self.weight_scale.dtype != torch.float32:
            return None
        if (bias is not None and bias.dtype != torch.float32) or kernels.requested() != "auto":
            return None
        args = (self.weight_packed, self.weight_scale, bias, self.in_features, self.bits, self.act_bits)
        return ops.packed_linear_cpu(x.float(), *args).to(ref.output_dtype(x))

    def _triton_forward(self, x: torch.Tensor) -> torch.Tensor | None:
        """The Triton kernels on the 2bit bytes (a custom op under torch.compile, which falls back inside),
        or None where safe dispatch sent this key to the reference (kernels/guard.py)."""
        args = (x, self.weight_packed, self.weight_scale, self.bias, self.in_features, self.bits, self.act_bits)
        if torch.compiler.is_compiling():
            return ops.packed_linear_triton(*args, self.weight_dtype, ref.output_dtype(x))
        return guard.packed_linear(*args, self.weight_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._fast_native(x)
        if out is not None:
            return out
        if x.shape[-1:] != (self.in_features,):  # before a kernel could take it for its own failure
            raise ValueError(f"PackedBitLinear expects inputs of (..., {self.in_features}), got {tuple(x.shape)}.")
        # A CPU tensor reaches Triton only when LIGHTNING_HYBRID_KERNELS says so (the interpreter's tests)
        if (not x.is_cpu or kernels.overridden()) and self.layout == "2bit" and kernels.use_triton(x):
            out = self._triton_forward(x)
            if out is not None:
                return out
        out = self._native_forward(x)
        if out is not None:
            return out
        if self.act_bits is None or self.act_bits > 8:
            xq = x if self.act_bits is None else ref.quantize_activation(x, self.act_bits)
            return F.linear(xq, self.unpacked_weight(), self.bias)  # [M, K] @ [N, K]^T -> [M, N]
        x_codes, x_scale = ref.activation_codes(x.reshape(-1, self.in_features), self.act_bits)
        if kernels.use_int8_cpu(x, self.act_bits):
            from lightning_hybrid.quant.kernels.cpu import int_sums

            sums = int_sums(x_codes, self.codes())
        else:
            sums = ref.code_sums(x_codes, self.codes(), self.width.max_code)
        out = ref.scale_sums(sums, x_scale, self.weight_scale, self.bias, ref.output_dtype(x))
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"bits={self.bits}, layout={self.layout}, act_bits={self.act_bits}"
        )
