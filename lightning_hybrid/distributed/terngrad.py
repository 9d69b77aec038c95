"""Ternary gradients for DDP: a communication hook after TernGrad (Wen et al. 2017, "TernGrad: Ternary
Gradients to Reduce Communication in Distributed Deep Learning", arXiv:1705.07878), no Lightning here.

Per gradient bucket, on every rank:
  1. error feedback: add the residual this rank's quantization left in the bucket last step
     (Seide et al. 2014; Karimireddy et al. 2019), when enabled;
  2. gradient bounding (TernGrad sec. 3.3): clip the values that share a scale (step 3) to
     +-clip_sigma standard deviations of their own (2.5 in the paper), which shrinks the scale and so
     the variance;
  3. scale sharing (TernGrad sec. 3.2): s = the maximum |g| over all ranks, of the whole bucket
     (scale_per="bucket", the default) or of each parameter (scale_per="parameter", the paper's
     layer-wise scaling; one float a parameter), so every rank's codes mean the same magnitudes and
     can be summed as integers;
  4. stochastic ternarization (TernGrad eq. 2): code = sign(g) * Bernoulli(|g| / s), so E[s * code] = g;
  5. wire="int8": the codes are summed across ranks by an all-reduce in int8 (int16 beyond 127 ranks):
     one byte an element instead of four, plus the scales. wire="2bit": each rank packs its codes four
     to a byte and all-gathers them, and every rank sums the world's codes itself: a quarter of a byte
     an element from each rank, but every rank receives world - 1 such buffers, so it pays off on few
     ranks (at 2 ranks a ring moves 1/4 of the int8 all-reduce's bytes; from 9 ranks on, more). The
     mean gradient s * sum / world replaces the bucket.
On the ternary char-level GPT of benchmarks/terngrad_ddp.py (fp32 gradients: val loss 2.06), bucket
scales ended at 2.42 and parameter scales at 2.70 (2 seeds each, within 0.002); bucket scales without
the bounding at 3.16.
The residual g - s * code stays on the rank (GradientCompression keeps every rank's in checkpoints).
"""

# No `from __future__ import annotations`: DDP checks the hook's annotations as objects.
import torch
import torch.distributed as dist

from lightning_hybrid.quant.pack import decode_2bit, pack_2bit
from lightning_hybrid.utils.checks import choice, number

WIRES = ("int8", "2bit")
SCALES = ("parameter", "bucket")


def ternarize(x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic ternary codes of x for a scale s >= max|x|: sign(x) with probability |x| / s, else 0."""
    prob = (x.abs() / scale.clamp_min(torch.finfo(torch.float32).tiny)).clamp_(max=1.0)
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=prob.dtype) < prob
    return (torch.sign(x) * keep).to(torch.int8)


class TernGradState:
    """What the hook keeps between steps: residuals per bucket, the random stream, bytes sent."""

    def __init__(
        self,
        seed: int = 0,
        error_feedback: bool = True,
        clip_sigma: float | None = 2.5,
        process_group=None,
        wire: str = "int8",
        scale_per: str = "bucket",
    ) -> None:
        number("clip_sigma", clip_sigma, 0, open_low=True, allowed=(None,))  # None: no bounding
        self.wire, self.scale_per = choice("wire", wire, WIRES), choice("scale_per", scale_per, SCALES)
        self.seed, self.error_feedback, self.process_group = seed, error_feedback, process_group
        self.clip_sigma = clip_sigma
        self.residuals: dict[int, torch.Tensor] = {}
        self.bytes_sent = 0  # by this rank into collectives, over all steps
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:  # an independent stream per rank, reproducible from the seed
            rank = dist.get_rank(self.process_group) if dist.is_initialized() else 0
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + rank)
        return self._generators[device]

    def compensate(self, index: int, grad: torch.Tensor) -> torch.Tensor:
        residual = self.residuals.get(index)
        if not self.error_feedback or residual is None or residual.shape != grad.shape:  # buckets can be rebuilt
            return grad.clone()
        return grad + residual


def bounded(pieces: list[torch.Tensor], clip_sigma: float | None) -> list[torch.Tensor]:
    """Each piece clipped to +-clip_sigma times its own standard deviation (TernGrad's gradient bounding)."""
    if clip_sigma is None:
        return pieces
    return [p.clamp(-clip_sigma * float(p.std(correction=0)), clip_sigma * float(p.std(correction=0))) for p in pieces]


def _scale_pieces(bucket: dist.GradBucket, numel: int, scale_per: str) -> list[int]:
    """Lengths of the stretches of the flat bucket that share a scale (and a bounding)."""
    if scale_per == "bucket":
        return [numel]
    sizes = [g.numel() for g in bucket.gradients()]
    if numel > sum(sizes):  # any tail of the flat buffer that no parameter owns
        sizes.append(numel - sum(sizes))
    return sizes


def terngrad_hook(state: TernGradState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: register with `ddp_model.register_comm_hook(TernGradState(), terngrad_hook)`."""
    group = state.process_group
    world = dist.get_world_size(group)
    grad = bucket.buffer()
    sizes = _scale_pieces(bucket, grad.numel(), state.scale_per)
    compensated = state.compensate(bucket.index(), grad)
    pieces = bounded(list(compensated.split(sizes)), state.clip_sigma)
    scales = torch.stack([p.abs().max() for p in pieces]).float()
    dist.all_reduce(scales, op=dist.ReduceOp.MAX, group=group)
    scale = scales.repeat_interleave(torch.tensor(sizes, device=scales.device))
    codes = ternarize(torch.cat(pieces), scale, state.generator(grad.device))
    if state.error_feedback:  # the clipped part is carried over too
        state.residuals[bucket.index()] = compensated - codes.to(grad.dtype) * scale.to(grad.dtype)
    state.bytes_sent += scales.numel() * scales.element_size()
    if state.wire == "2bit":
        return _gather_packed(state, codes, grad, scale, world)
    if world > 127:
        codes = codes.to(torch.int16)
    state.bytes_sent += codes.numel() * codes.element_size()
    future = dist.all_reduce(codes, group=group, async_op=True).get_future()

    def mean_gradient(fut: torch.futures.Future) -> torch.Tensor:
        summed = fut.value()[0]
        return grad.copy_(summed.to(torch.float32).mul_(scale / world))

    return future.then(mean_gradient)


def _gather_packed(state: TernGradState, codes, grad, scale, world: int) -> torch.futures.Future[torch.Tensor]:
    packed = pack_2bit(codes)  # the packed export's 2-bit layout, over the flat bucket
    state.bytes_sent += packed.numel()
    gathered = [torch.empty_like(packed) for _ in range(world)]
    future = dist.all_gather(gathered, packed, group=state.process_group, async_op=True).get_future()

    def mean_gradient(fut: torch.futures.Future) -> torch.Tensor:
        fut.wait()
        summed = torch.stack([decode_2bit(p, codes.numel()) for p in gathered]).sum(0, dtype=torch.int32)
        return grad.copy_(summed.to(torch.float32).mul_(scale / world))

    return future.then(mean_gradient)
