"""A tiny randomly initialized transformers Llama whose rows are multiples of 256 (what llama.cpp's TQ types
need), for the GGUF export tests."""

import torch


def tiny_llama(intermediate=512, vocab=256, kv_heads=2, seed=0, **extra):
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
        **extra,
    )
    return transformers.LlamaForCausalLM(config).eval()
