"""Generate text from the main job's exports of a byte-level model, with transformers or llama.cpp.

    python recipes/hf_llama/generate.py RUN_DIR/transformers --prompt "def " --tokens 200
    python recipes/hf_llama/generate.py RUN_DIR/model.gguf --prompt "def " --tokens 200   # llama.cpp

The main job's byte-level data has no tokenizer of its own: token i is byte i, so the prompt is encoded
and the output decoded here (the GGUF file's byte vocabulary does the same inside llama.cpp). Sampling at
--temperature from a seeded generator (the same text every run; 0: greedy), each step on the last
context-length tokens (the context the model was trained on), through transformers' own BitNet layers
or llama.cpp's TQ kernels (llama-cpp-python: the `llamacpp` extra).
"""

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

NextLogits = Callable[[Sequence[int]], torch.Tensor]


def transformers_model(directory: str) -> tuple[NextLogits, int]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()

    def next_logits(ids: Sequence[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=torch.tensor([list(ids)])).logits[0, -1]

    return next_logits, model.config.max_position_embeddings


def llama_cpp_model(path: str) -> tuple[NextLogits, int]:
    import gguf

    from lightning_hybrid.export.llama_cpp import load_llama_cpp

    context = int(gguf.GGUFReader(path).fields["llama.context_length"].contents())
    llm = load_llama_cpp(path, n_ctx=context)

    def next_logits(ids: Sequence[int]) -> torch.Tensor:
        llm.reset()  # the window slides: evaluate it afresh
        llm.eval(list(ids))
        return torch.tensor(llm.scores[len(ids) - 1], dtype=torch.float32)

    return next_logits, context


def generate(next_logits: NextLogits, context: int, prompt: str, tokens: int, temperature: float, seed: int) -> str:
    ids, generator = list(prompt.encode("utf-8")), torch.Generator().manual_seed(seed)
    for _ in range(tokens):
        logits = next_logits(ids[-context:])
        if temperature == 0:
            ids.append(int(logits.argmax()))
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return bytes(ids).decode("utf-8", errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="the run's transformers/ directory, or its model.gguf (llama.cpp)")
    parser.add_argument("--prompt", default="def ")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    parser.add_argument("--seed", type=int, default=0, help="of the sampling: the same text every run")
    args = parser.parse_args()
    load = llama_cpp_model if Path(args.export).suffix == ".gguf" else transformers_model
    with torch._dynamo.config.patch(disable=True):  # transformers compiles its quantizer: seconds, same text
        model, context = load(args.export)
        print(generate(model, context, args.prompt, args.tokens, args.temperature, args.seed))


if __name__ == "__main__":
    main()
