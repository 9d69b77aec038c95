"""Ternary gradients for DDP: a communication hook after TernGrad (Wen et al. 2017, "TernGrad: Ternary
Gradients to Reduce Communication in Distributed Deep Learning", arXiv:1705.07878), no Lightning here.

Per gradient bucket, on every rank:
  1. error feedback: add the residual this rank's quantization left in the bucket last step
     (Seide et al. 2014; Karimireddy et al. 2019), when enabled;
  2. scale sharing (TernGrad sec. 3.2): s = the maximum |g| over all ranks (one float all-reduced), so
     every rank's codes mean the same magnitudes and can be summed as integers;
  3. stochastic ternarization (TernGrad eq. 2): code = sign(g) * Bernoulli(|g| / s), so E[s * code] = g;
  4. the codes are summed across ranks as int8 (int16 beyond 127 ranks): one byte an element instead
     of four, plus the scale. The mean gradient s * sum / world replaces the bucket.
The residual g - s * code stays on the rank; it is not saved in checkpoints (it restarts at zero).
"""

# No `from __future__ import annotations`: DDP checks the hook's annotations as objects.
import torch
import torch.distributed as dist


def ternarize(x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic ternary codes of x for a scale s >= max|x|: sign(x) with probability |x| / s, else 0."""
    prob = (x.abs() / scale.clamp_min(torch.finfo(torch.float32).tiny)).clamp_(max=1.0)
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=prob.dtype) < prob
    return (torch.sign(x) * keep).to(torch.int8)


class TernGradState:
    """What the hook keeps between steps: residuals per bucket, the random stream, bytes sent."""

    def __init__(self, seed: int = 0, error_feedback: bool = True, process_group=None) -> None:
        self.seed, self.error_feedback, self.process_group = seed, error_feedback, process_group
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


def terngrad_hook(state: TernGradState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: register with `ddp_model.register_comm_hook(TernGradState(), terngrad_hook)`."""
    group = state.process_group
    world = dist.get_world_size(group)
    grad = bucket.buffer()
    compensated = state.compensate(bucket.index(), grad)
    scale = compensated.abs().max().float().reshape(1)
    dist.all_reduce(scale, op=dist.ReduceOp.MAX, group=group)
    codes = ternarize(compensated, scale, state.generator(grad.device))
    if state.error_feedback:
        state.residuals[bucket.index()] = compensated - codes.to(grad.dtype) * scale.to(grad.dtype)
    if world > 127:
        codes = codes.to(torch.int16)
    state.bytes_sent += codes.numel() * codes.element_size() + scale.numel() * scale.element_size()
    future = dist.all_reduce(codes, group=group, async_op=True).get_future()

    def mean_gradient(fut: torch.futures.Future) -> torch.Tensor:
        summed = fut.value()[0]
        return grad.copy_(summed.to(torch.float32).mul_(scale / world))

    return future.then(mean_gradient)
