"""A tiny randomly initialized BERT with a word-level vocabulary, saved as a Hugging Face model directory
(config, safetensors, tokenizer): the offline stand-in for all-MiniLM-L6-v2 in fast tests."""

from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Return the event type for the record.",
    "Set the factory to be used when instantiating a log record.",
    "The cache may be cleared by calling the clear method.",
    "Blank lines and lines beginning with a hash are skipped.",
    "This class adds support for chat style protocols.",
    "If the exit code was zero then return to the caller.",
    "Creates a new named font if the flag is false.",
    "Some operations do not normally pass through the toolkit.",
    "The address is within one of the reserved network ranges.",
    "Read the whole file and return its lines as a list.",
    "Each worker process handles one task at a time.",
]


def sentences_text() -> str:
    return "\n\n".join(SENTENCES) + "\n"


def save_tiny_bert(directory: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w.strip(".").lower() for s in SENTENCES for w in s.split()} | {"."})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(directory / "vocab.txt")).save_pretrained(directory)  # vocab_file (v4) or vocab (v5)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,  # large enough that ternary weights change the embeddings (0.02 barely does)
    )
    BertModel(config).save_pretrained(directory)
    return directory


PAIRS = {"encoder.pool": "pool"}  # Distillation's hidden pair for sentence embeddings: the pooled outputs


def sentence_batches(tokenizer, sentences=SENTENCES):
    """Padded batches of 4 tokenized sentences, as the sentence job builds them."""
    from lightning_hybrid.data.sentence_module import sentence_loader, tokenize

    return list(sentence_loader(tokenize(tokenizer, sentences, 32), tokenizer.pad_token_id, 4))
