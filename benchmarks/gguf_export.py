"""File sizes in each export format, and CPU decode speed: llama.cpp (TQ2_0, TQ1_0, F16) against our own
PackedBitLinear model and the fp32 model, for one main-job Llama, in one process.

    python -m lightning_hybrid.train model=llama hydra.run.dir=runs/hf_llama
    python benchmarks/gguf_export.py runs/hf_llama --out benchmarks/results/gguf_export

The run's latent weights (model.safetensors) are rebuilt into its model, converted as the run trained it,
and written in every format into a temporary directory. Decoding: one prompt token, then greedy decoding
with a KV cache to the model's context length (63 new tokens for context 64), --rounds times per backend,
backends interleaved in an order that turns each round; tokens per second is the median round's.
PyTorch backends run the transformers LlamaForCausalLM (fp32: its nn.Linear layers; packed: the layers
load_packed installs, on the C kernel of quant/kernels/native.py); llama.cpp runs through
llama-cpp-python. All on --threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_model

from lightning_hybrid.export import load_packed, save_gguf, save_packed, save_transformers
from lightning_hybrid.export.llama_cpp import load_llama_cpp
from lightning_hybrid.quant import convert


def build(run: Path, quantized: bool) -> torch.nn.Module:
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    model = instantiate(cfg.model, vocab_size=256).eval()
    model.load_state_dict(load_file(run / "model.safetensors"))
    if quantized:
        convert(model, bits=float(cfg.quant.bits), act_bits=cfg.quant.get("act_bits", 8))
    return model


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def write_formats(run: Path, out: Path) -> dict[str, Path]:
    quantized = build(run, quantized=True)
    files = {"fp32 safetensors (the latent weights)": out / "fp32.safetensors"}
    save_model(build(run, quantized=False), files["fp32 safetensors (the latent weights)"])
    for layout in ("2bit", "base3"):
        files[f"packed {layout}"] = out / f"packed-{layout}.safetensors"
        save_packed(quantized, files[f"packed {layout}"], layout=layout)
    files["transformers BitNet"] = save_transformers(quantized, out / "transformers").directory
    for kind in ("TQ2_0", "TQ1_0", "F16"):
        files[f"gguf {kind}"] = save_gguf(quantized, out / f"model-{kind}.gguf", ternary_type=kind).path
    return files


def torch_decoder(model: torch.nn.Module, context: int):
    llama = next(m for m in model.modules() if type(m).__name__ == "LlamaForCausalLM")

    def decode(first: int) -> list[int]:
        ids, past = [first], None
        with torch.no_grad():
            while len(ids) < context:
                out = llama(input_ids=torch.tensor([[ids[-1]]]), cache=past, use_cache=True)
                past = out.cache
                ids.append(int(out.logits[0, -1].argmax()))
        return ids

    return decode


def llama_cpp_decoder(path: Path, context: int, threads: int):
    llm = load_llama_cpp(path, n_ctx=context, threads=threads)

    def decode(first: int) -> list[int]:
        llm.reset()
        ids = [first]
        while len(ids) < context:
            llm.eval([ids[-1]])
            ids.append(int(llm.scores[len(ids) - 1].argmax()))
        return ids

    return decode


def decoders(run: Path, files: dict[str, Path], context: int, threads: int) -> dict:
    packed = load_packed(build(run, quantized=False), files["packed 2bit"])
    found = {"fp32 PyTorch (the latent weights)": torch_decoder(build(run, quantized=False), context)}
    found["PackedBitLinear (ours)"] = torch_decoder(packed, context)
    for kind in ("TQ2_0", "TQ1_0", "F16"):
        found[f"llama.cpp {kind}"] = llama_cpp_decoder(files[f"gguf {kind}"], context, threads)
    return found


def measure(found: dict, context: int, rounds: int) -> dict[str, dict]:
    times = {name: [] for name in found}
    sequences = {}
    names = list(found)
    for r in range(rounds + 1):  # round 0 warms every backend up and is not counted
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            sequences[name] = found[name](10)  # the newline byte as the prompt
            if r:
                times[name].append(time.perf_counter() - start)
    reference = sequences["PackedBitLinear (ours)"]
    return {
        name: {
            "tokens_per_s": round((context - 1) / statistics.median(times[name]), 1),
            "greedy_tokens_equal_to_ours": sum(a == b for a, b in zip(sequences[name], reference)) - 1,
        }
        for name in names
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished main-job run of model=llama")
    parser.add_argument("--out", type=Path, help="write results_<threads>.json and .md here")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    context = int(OmegaConf.load(args.run / ".hydra" / "config.yaml").data.block_size)
    with tempfile.TemporaryDirectory() as tmp, torch._dynamo.config.patch(disable=True):
        files = write_formats(args.run, Path(tmp))
        sizes = {name: directory_bytes(path) for name, path in files.items()}
        speed = measure(decoders(args.run, files, context, args.threads), context, args.rounds)
    results = {"run": str(args.run), "threads": args.threads, "context": context, "bytes": sizes, "decode": speed}
    lines = ["| format | bytes |", "|---|---:|"] + [f"| {k} | {v:,} |" for k, v in sizes.items()]
    lines += [
        "",
        f"| decode backend ({args.threads} thread(s)) | tokens/s | greedy tokens equal to ours |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {k} | {v['tokens_per_s']} | {v['greedy_tokens_equal_to_ours']} of {context - 1} |" for k, v in speed.items()
    ]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"results_{args.threads}thread{'s' if args.threads > 1 else ''}"
        (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
