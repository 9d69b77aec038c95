"""Text corpora: the Python standard library's own source (embedded default), or any file/directory."""

from __future__ import annotations

import codecs
import os
import sysconfig
import warnings
from pathlib import Path

from lightning_hybrid.utils.checks import integer


def stdlib_dir() -> Path:
    """The directory of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file() and "site-packages" not in p.parts)


# A file is binary, not text, if its first bytes hold a NUL (git's rule); text in another encoding than
# the one asked for shows as a large share of bytes that do not decode.
SNIFF_BYTES = 8192
MAX_UNDECODABLE = 0.3


def is_binary(data: bytes) -> bool:
    return b"\x00" in data[:SNIFF_BYTES]


def undecodable_share(data: bytes, encoding: str) -> float:
    """The share of the first bytes that do not decode in `encoding` (a cut multi-byte character at the
    end of the sample does not count)."""
    sample = data[:SNIFF_BYTES]
    text = sample.decode(encoding, errors="replace")
    return text[:-4].count("\ufffd") / max(len(sample), 1)


def read_bytes(
    path: str | os.PathLike | None = None, max_bytes: int | None = None, pattern: str = "*", encoding: str = "utf-8"
) -> bytes:
    """The UTF-8 bytes of a text file, or of every text file under a directory (sorted, so the corpus is
    reproducible; binary files in a directory are skipped, with a warning).

    path=None reads the standard library's *.py sources. `max_bytes` keeps the first bytes only.
    `encoding`: the files' encoding (their text is re-encoded as UTF-8 when it is another). A binary file,
    or one that does not decode in `encoding`, is refused with a message saying so.
    """
    integer("max_bytes", max_bytes, 1, allowed=(None,))
    _check_encoding(encoding)
    root, pattern = (stdlib_dir(), "*.py") if path is None else (Path(path).expanduser(), pattern)
    if not root.exists():
        raise FileNotFoundError(f"`path` {os.fspath(root)!r} does not exist: give a text file or a directory of them.")
    files = [root] if root.is_file() else _files(root, pattern)
    chunks, size, skipped = [], 0, []
    for file in files:
        data = file.read_bytes()
        if root.is_file():
            _refuse_non_text(file, data, encoding)
        elif is_binary(data):
            skipped.append(file.name)
            continue
        if encoding.lower().replace("-", "").replace("_", "") != "utf8":
            data = data.decode(encoding, errors="replace").encode("utf-8")
        chunks.append(data)
        size += len(data)
        if max_bytes is not None and size >= max_bytes:
            break
    if skipped:
        warnings.warn(
            f"`path` {os.fspath(root)!r}: skipped {len(skipped)} binary files ({', '.join(skipped[:5])}...).",
            stacklevel=2,
        )
    text = b"\n".join(chunks)[:max_bytes]
    if len(text) == 0:
        raise ValueError(
            f"`path` {os.fspath(root)!r} holds no text (no files matching {pattern!r}, or only empty or binary ones)."
        )
    return text


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(
            f"`encoding` must be a text encoding Python knows (utf-8, latin-1, ...), got {encoding!r}."
        ) from None


def _refuse_non_text(file: Path, data: bytes, encoding: str) -> None:
    if is_binary(data):
        raise ValueError(
            f"`path` {os.fspath(file)!r} is a binary file (it holds NUL bytes), not text: give a text file or a "
            "directory of them."
        )
    share = undecodable_share(data, encoding)
    if share > MAX_UNDECODABLE:
        raise ValueError(
            f"`path` {os.fspath(file)!r} is not {encoding} text ({share:.0%} of its first bytes do not decode): if it "
            "is text in another encoding, set `encoding` (data.encoding=latin-1, ...)."
        )
