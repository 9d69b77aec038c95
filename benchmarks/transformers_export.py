"""How closely transformers reproduces our logits from a save_transformers checkpoint, in fp32 and bf16.

A tiny Llama (hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 96) built from a config, converted to
ternary by `convert`, saved, loaded by AutoModelForCausalLM, run on 4 x 32 random tokens.
    python benchmarks/transformers_export.py
"""

import tempfile

import torch
import transformers

from lightning_hybrid.export import save_transformers
from lightning_hybrid.quant import convert


def _llama(dtype: torch.dtype) -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return transformers.LlamaForCausalLM(config).to(dtype).eval()


def compare(dtype: torch.dtype) -> str:
    model = _llama(dtype)
    convert(model)
    ids = torch.randint(0, 96, (4, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(input_ids=ids).logits.float()
        directory = tempfile.mkdtemp()
        save_transformers(model, directory)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).eval()
        theirs = loaded(input_ids=ids).logits.float()
    relative = ((theirs - ours).norm() / ours.norm()).item()
    agree = (theirs.argmax(-1) == ours.argmax(-1)).float().mean().item()
    return f"{str(dtype).removeprefix('torch.')}: relative difference {relative:.2e}, argmax equal {agree:.0%}"


def main() -> None:
    with torch._dynamo.config.patch(disable=True):  # transformers compiles its quantizer; same numbers
        for dtype in (torch.float32, torch.bfloat16):
            print(compare(dtype))


if __name__ == "__main__":
    main()
