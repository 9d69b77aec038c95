"""Generate text with transformers from the main job's transformers export of a byte-level model.

    python recipes/hf_llama/generate.py RUN_DIR/transformers --prompt "def " --tokens 200

The main job's byte-level data has no tokenizer: token i is byte i, so the prompt is encoded and the
output decoded here. Sampling at --temperature from a seeded generator (the same text every run; 0:
greedy) through transformers' own BitNet layers, each step on the last max_position_embeddings tokens
(the context the model was trained on).
"""

import argparse

import torch
from transformers import AutoModelForCausalLM


def generate(directory: str, prompt: str, tokens: int, temperature: float, seed: int) -> str:
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    context = model.config.max_position_embeddings  # what it was trained on: slide a window of that
    ids, generator = list(prompt.encode("utf-8")), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(tokens):
            logits = model(input_ids=torch.tensor([ids[-context:]])).logits[0, -1]
            if temperature == 0:
                ids.append(int(logits.argmax()))
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return bytes(ids).decode("utf-8", errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="the run's transformers/ directory")
    parser.add_argument("--prompt", default="def ")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    parser.add_argument("--seed", type=int, default=0, help="of the sampling: the same text every run")
    args = parser.parse_args()
    with torch._dynamo.config.patch(disable=True):  # transformers compiles its quantizer: seconds, same text
        print(generate(args.directory, args.prompt, args.tokens, args.temperature, args.seed))


if __name__ == "__main__":
    main()
