"""Fast paths for the layers of quant/ (Triton on GPUs, int8 matmuls on CPUs), and the choice of path.

The environment variable LIGHTNING_HYBRID_KERNELS chooses:
  * "auto" (default): Triton for CUDA tensors when triton is installed; on a CPU, the packed inference
    layer's int8 matmul (kernels/cpu.py) when its activations are quantized to <= 8 bits; the
    pure-torch reference otherwise (QAT training on a CPU always runs the reference).
  * "torch": the reference everywhere, whose packed outputs equal the QAT model's bit for bit.
  * "triton": the Triton kernels on any device; on a CPU that needs TRITON_INTERPRET=1 set before
    triton is first imported (the tests run them that way).
Under "auto" each Triton kernel first runs once per key (device, dtypes, bits) on a small input against
the torch reference, and a kernel that fails to compile, raises or disagrees falls back to the reference
for that key with one warning (kernels/guard.py); "triton" checks nothing and raises.
Nothing here imports triton until a kernel is asked for.
"""

from lightning_hybrid.quant.kernels.dispatch import (
    CHOICES,
    overridden,
    requested,
    triton_installed,
    use_int8_cpu,
    use_triton,
)

__all__ = ["CHOICES", "overridden", "requested", "triton_installed", "use_int8_cpu", "use_triton"]
