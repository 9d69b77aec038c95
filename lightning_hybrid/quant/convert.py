"""Swap the nn.Linear layers of any module for BitLinear, with filters and an honest count.

`bit_linears(model)` (quant/linear.py) finds them afterwards; quant/schedule.py sets their warm-up weight."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

from lightning_hybrid.quant.linear import BitLinear, bit_linears  # noqa: F401 (bit_linears lived here)

# The default exclude rule keeps the output head at full precision, as BitNet b1.58 keeps the embedding
# and the head in high precision. A Linear is the head (`head_reason`) when
#  - its own name (the last part of its fully qualified name) is one of DEFAULT_HEAD_NAMES;
#  - it is the last Linear inside a module named one of HEAD_CONTAINERS (torchvision's `classifier.6` in
#    VGG, `classifier.1` in EfficientNet, timm's `head.fc`): the earlier Linears of such a classifier are
#    hidden layers. (Not every head name: BERT's `output.dense` is a hidden layer in every block.);
#  - it is the model's last Linear and named `fc` (torchvision's ResNet, RegNet, Inception, GoogLeNet,
#    ShuffleNet): a Linear named `fc` elsewhere is a hidden layer in many models;
#  - a submodule's `get_output_embeddings()` returns it (transformers' models, whatever the head is called).
# A Linear that shares its weight with an nn.Embedding (a tied head) counts as the embedding and is
# excluded as well.
DEFAULT_HEAD_NAMES = (
    "lm_head",
    "head",
    "heads",
    "classifier",
    "cls",
    "score",
    "output",
    "output_layer",
    "fc_out",
    "logits",
    "decoder",  # the vocabulary projection in BERT's MLM head and PyTorch's word-language-model examples
)

HEAD_CONTAINERS = ("classifier", "head", "heads", "cls")

FilterFn = Callable[[nn.Module, str], bool]


@dataclass
class ConversionReport:
    """What `convert` did. `total` counts every nn.Linear, converted or not."""

    total: int = 0
    converted: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # fqn -> reason

    def __str__(self) -> str:
        text = f"converted {len(self.converted)} of {self.total} linear layers, skipped {len(self.skipped)}"
        if self.already:
            text += f" ({len(self.already)} already quantized)"
        return text

    def describe(self) -> str:
        """The summary line and one line per skipped layer with its reason."""
        lines = [str(self)] + [f"  skipped {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def _as_patterns(patterns: str | Sequence[str] | None, name: str) -> list[str] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str):
        return [patterns]
    if not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"`{name}` must be a pattern string or a list of them, got {patterns!r}.")
    return list(patterns)


def _matches(fqn: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(fqn, p) for p in patterns)


def head_reason(model: nn.Module) -> dict[str, str]:
    """The Linears of `model` the default rule keeps as output heads, by name, with why (module comment)."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    heads = {n: "output head (default exclude rule)" for n in linears if n.rsplit(".", 1)[-1] in DEFAULT_HEAD_NAMES}
    for container in {n.rpartition(".")[0] for n in linears}:
        if container and container.rsplit(".", 1)[-1] in HEAD_CONTAINERS:
            last = [n for n in linears if n.startswith(container + ".")][-1]
            heads.setdefault(last, f"the last Linear of the head {container!r} (default exclude rule)")
    if linears and linears[-1].rsplit(".", 1)[-1] == "fc":
        heads.setdefault(linears[-1], "the model's last Linear, named fc (default exclude rule)")
    output = _output_embeddings(model)
    for name, module in model.named_modules():
        if id(module) in output and isinstance(module, nn.Linear):
            heads.setdefault(name, "get_output_embeddings() of its model (default exclude rule)")
    return heads


def _output_embeddings(model: nn.Module) -> set[int]:
    found = set()
    for module in model.modules():
        getter = getattr(module, "get_output_embeddings", None)
        if callable(getter):
            try:
                head = getter()
            except (NotImplementedError, AttributeError):  # a base class's stub
                continue
            if isinstance(head, nn.Module):
                found.add(id(head))
    return found


def _embedding_weights(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def _functional_users(model: nn.Module) -> set[int]:
    # nn.MultiheadAttention reads out_proj.weight directly in F.multi_head_attention_forward, so a swapped
    # out_proj would never run its forward: converting it would be counted but not happen.
    return {id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)}


def _skip_reason(fqn, module, include, exclude, filter_fn, tied, functional, heads) -> str | None:
    if id(module) in functional:
        return "used functionally by nn.MultiheadAttention (its forward never runs)"
    if include is not None and not _matches(fqn, include):
        return "not matched by include"
    if exclude is None:
        if fqn in heads:
            return heads[fqn]
        if id(module.weight) in tied:
            return "weight tied to an nn.Embedding (default exclude rule)"
    elif _matches(fqn, exclude):
        return "matched by exclude"
    if filter_fn is not None and not filter_fn(module, fqn):
        return "rejected by filter_fn"
    return None


def _warn_unmatched(patterns: list[str] | None, names: list[str], arg: str) -> None:
    for pattern in patterns or []:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            warnings.warn(f"`{arg}` pattern {pattern!r} matches no nn.Linear layer.", UserWarning, stacklevel=3)


def replace_submodule(model: nn.Module, fqn: str, new: nn.Module) -> None:
    """Put `new` at `fqn`, keeping any fused fast path from bypassing its forward."""
    parent_name, _, child = fqn.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
    if isinstance(parent, nn.TransformerEncoderLayer):
        # In eval under no_grad, nn.TransformerEncoderLayer runs a fused kernel that reads linear1.weight
        # and linear2.weight directly, so a quantized layer there would silently compute in full
        # precision. The flag is consulted only by that fast path; the regular path still applies
        # `parent.activation`, so this changes nothing else.
        parent.activation_relu_or_gelu = 0


def convert(
    model: nn.Module,
    bits: float = 1.58,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    filter_fn: FilterFn | None = None,
    act_bits: int | None = 8,
    plan: Mapping[str, float] | None = None,
) -> ConversionReport:
    """Replace nn.Linear layers of `model` in place by BitLinear layers sharing their Parameters.

    `plan` maps layer names to their own bits (a mixed-precision plan, see quant/precision.py); layers
    it does not name get `bits`. A name in the plan that is not converted is an error.

    include/exclude are fnmatch patterns on fully qualified module names. `exclude=None` applies the
    default rule (output heads, found as the comment on DEFAULT_HEAD_NAMES says, and Linears tied to an
    nn.Embedding stay full precision); `exclude=[]` converts those too. Idempotent: layers that are
    already BitLinear are counted and left alone. Raises ValueError when the model has no nn.Linear, or when every layer
    is filtered out.

    Quantization happens in BitLinear.forward, so code that reads a layer's `.weight` itself instead of
    calling the layer bypasses it. The two such users in torch.nn are handled: nn.MultiheadAttention's
    out_proj is skipped (and reported), nn.TransformerEncoderLayer's fused eval path is switched off.
    """
    include_p, exclude_p = _as_patterns(include, "include"), _as_patterns(exclude, "exclude")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: there is nothing to quantize.")
    names = [n for n, _ in linears]
    _warn_unmatched(include_p, names, "include")
    _warn_unmatched(exclude_p, names, "exclude")
    tied, functional, heads = _embedding_weights(model), _functional_users(model), head_reason(model)
    report = ConversionReport(total=len(linears))
    for fqn, module in linears:
        if isinstance(module, BitLinear):
            report.already.append(fqn)
            continue
        reason = _skip_reason(fqn, module, include_p, exclude_p, filter_fn, tied, functional, heads)
        if reason:
            report.skipped[fqn] = reason
            continue
        layer_bits = (plan or {}).get(fqn, bits)
        replace_submodule(model, fqn, BitLinear.from_linear(module, bits=layer_bits, act_bits=act_bits))
        report.converted.append(fqn)
    _check_plan(plan, report)
    if not report.converted and not report.already:
        raise ValueError(
            f"No nn.Linear layer of {type(model).__name__} was selected for quantization "
            f"(include={include!r}, exclude={exclude!r}):\n{report.describe()}"
        )
    return report


def _check_plan(plan: Mapping[str, float] | None, report: ConversionReport) -> None:
    stray = sorted(set(plan or {}) - set(report.converted) - set(report.already))
    if stray:
        raise ValueError(
            f"`plan` names layers that are not converted: {stray[:5]} (skipped ones: "
            f"{ {n: report.skipped[n] for n in stray if n in report.skipped} }). Plans name quantized nn.Linear layers."
        )


def selected_linears(
    model: nn.Module,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    filter_fn: FilterFn | None = None,
) -> dict[str, nn.Linear]:
    """The nn.Linear layers `convert` would quantize (already quantized ones included), by name."""
    include_p, exclude_p = _as_patterns(include, "include"), _as_patterns(exclude, "exclude")
    context = _embedding_weights(model), _functional_users(model), head_reason(model)
    return {
        fqn: m
        for fqn, m in model.named_modules()
        if isinstance(m, nn.Linear)
        and (isinstance(m, BitLinear) or not _skip_reason(fqn, m, include_p, exclude_p, filter_fn, *context))
    }
