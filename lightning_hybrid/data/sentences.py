"""English sentences for sentence-embedding work: from the standard library's docstrings (embedded
default, no download) or from any text file, split, filtered and deduplicated reproducibly."""

from __future__ import annotations

import ast
import os
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from lightning_hybrid.data.corpora import stdlib_dir
from lightning_hybrid.utils.checks import non_negative_int, positive_int

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_CODE_MARKS = (">>>", "::", "=", "{", "}", "`", "|", "--", "\\", "http", "www.")


def split_sentences(text: str, min_words: int = 6, max_words: int = 40) -> list[str]:
    """Prose sentences of `text`: paragraphs (split at blank lines, doctest lines dropped) joined into
    lines, cut after . ! or ? before a capital, kept when they have min_words..max_words words, end
    with punctuation, are mostly letters and look like prose rather than code."""
    _check_range(min_words, max_words)
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.splitlines() if not line.lstrip().startswith((">>>", "..."))]  # doctests
        flat = " ".join(" ".join(lines).split())
        sentences += [s for s in _SENTENCE_END.split(flat) if _is_prose(s, min_words, max_words)]
    return sentences


def _check_range(min_words: int, max_words: int) -> None:
    positive_int("min_words", min_words)
    positive_int("max_words", max_words)
    if min_words > max_words:
        raise ValueError(f"`min_words` ({min_words}) must not exceed `max_words` ({max_words}).")


def _is_prose(sentence: str, min_words: int, max_words: int) -> bool:
    words = sentence.split()
    if not min_words <= len(words) <= max_words or sentence[-1] not in ".!?" or not sentence[0].isupper():
        return False
    if any(mark in sentence for mark in _CODE_MARKS):
        return False
    letters = sum(c.isalpha() or c == " " for c in sentence)
    return letters >= 0.9 * len(sentence)


def _docstrings(source: str) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old sources
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []  # test fixtures in the standard library that are broken on purpose
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [doc for node in ast.walk(tree) if isinstance(node, kinds) and (doc := ast.get_docstring(node))]


def corpus_sentences(
    path: str | os.PathLike | None = None, max_sentences: int = 20000, min_words: int = 6, max_words: int = 40
) -> list[str]:
    """Unique sentences in reading order, at most `max_sentences`.

    path=None reads the docstrings of the standard library's *.py files (sorted by path); a file is read
    as text; a directory, its *.txt files.
    """
    positive_int("max_sentences", max_sentences)
    _check_range(min_words, max_words)
    seen: dict[str, None] = {}
    for text in _texts(path):
        for sentence in split_sentences(text, min_words, max_words):
            seen.setdefault(sentence)
            if len(seen) >= max_sentences:
                return list(seen)
    if not seen:
        raise ValueError(f"`path` {path!r} holds no sentences of {min_words}-{max_words} words.")
    return list(seen)


def _texts(path):
    if path is None:
        for file in sorted(stdlib_dir().rglob("*.py")):
            if "site-packages" not in file.parts and "test" not in file.parts and "tests" not in file.parts:
                yield from _docstrings(file.read_text(encoding="utf-8", errors="replace"))
        return
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"`path` {os.fspath(root)!r} does not exist: give a text file or a directory of them.")
    for file in [root] if root.is_file() else sorted(root.rglob("*.txt")):
        yield file.read_text(encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class SentenceSplits:
    """Disjoint train / held-out / retrieval sentences."""

    train: list[str]
    held_out: list[str]
    retrieval: list[str]


def split_corpus(sentences: list[str], held_out: int, retrieval: int, seed: int = 0) -> SentenceSplits:
    """Shuffle with `seed` and cut: the first `held_out`, the next `retrieval`, the rest for training."""
    non_negative_int("held_out", held_out)
    non_negative_int("retrieval", retrieval)
    if held_out + retrieval >= len(sentences):
        raise ValueError(
            f"`held_out` + `retrieval` = {held_out + retrieval} leaves no training sentences out of {len(sentences)}."
        )
    order = list(sentences)
    random.Random(seed).shuffle(order)
    return SentenceSplits(order[retrieval + held_out :], order[:held_out], order[held_out : held_out + retrieval])
