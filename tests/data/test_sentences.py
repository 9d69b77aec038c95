"""Sentence corpora: splitting, filtering, dedup, splits, batches."""

import pytest

from lightning_hybrid.data.sentences import corpus_sentences, split_corpus, split_sentences

TEXT = """Return the event type for the record. It is cached.
The cache may be cleared by calling clear_cache() at any time.

>>> x = compute(3)
Blank lines and lines beginning with a hash are skipped by the parser.
Return the event type for the record.
"""


def test_prose_sentences_are_kept_and_code_and_short_ones_dropped():
    # oracle: the sentences of TEXT read by hand; "It is cached." has 3 words (< 6), the doctest line is code
    assert split_sentences(TEXT) == [
        "Return the event type for the record.",
        "The cache may be cleared by calling clear_cache() at any time.",
        "Blank lines and lines beginning with a hash are skipped by the parser.",
        "Return the event type for the record.",
    ]


def test_word_limits_select_by_length():
    assert split_sentences(TEXT, min_words=2, max_words=7) == [
        "Return the event type for the record.",
        "It is cached.",
        "Return the event type for the record.",
    ]


def test_corpus_deduplicates_in_reading_order_and_stops_at_max(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    assert corpus_sentences(path) == [
        "Return the event type for the record.",
        "The cache may be cleared by calling clear_cache() at any time.",
        "Blank lines and lines beginning with a hash are skipped by the parser.",
    ]
    assert corpus_sentences(path, max_sentences=1) == ["Return the event type for the record."]


def test_default_corpus_is_the_standard_library_docstrings():
    sentences = corpus_sentences(max_sentences=50)
    assert len(sentences) == 50 and len(set(sentences)) == 50
    assert all(s[0].isupper() and s[-1] in ".!?" for s in sentences)


def test_splits_are_disjoint_deterministic_and_complete():
    sentences = [f"Sentence number {i} is here." for i in range(100)]
    a, b = split_corpus(sentences, held_out=10, retrieval=20, seed=3), split_corpus(sentences, 10, 20, seed=3)
    assert a == b
    assert (len(a.held_out), len(a.retrieval), len(a.train)) == (10, 20, 70)
    assert sorted(a.train + a.held_out + a.retrieval) == sorted(sentences)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: split_sentences("x", min_words=0), "`min_words` must be a positive integer, got 0"),
        (lambda p: split_sentences("x", min_words=9, max_words=3), "`min_words` (9) must not exceed `max_words` (3)"),
        (lambda p: corpus_sentences(p / "missing.txt"), "does not exist"),
        (lambda p: corpus_sentences(p, max_sentences=0), "`max_sentences` must be a positive integer, got 0"),
        (
            lambda p: split_corpus(["A b c d e f."] * 5, held_out=3, retrieval=2),
            "leaves no training sentences out of 5",
        ),
        (lambda p: split_corpus(["A."], held_out=-1, retrieval=0), "`held_out` must be a non-negative integer, got -1"),
    ],
)
def test_bad_arguments_are_named(tmp_path, call, message):
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        call(tmp_path)
    assert message in str(err.value)


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("no sentences here\n")
    with pytest.raises(ValueError, match="holds no sentences"):
        corpus_sentences(tmp_path)
