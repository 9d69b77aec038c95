"""Text corpora: the Python standard library's own source (embedded default), or any file/directory."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from lightning_hybrid.utils.checks import integer


def stdlib_dir() -> Path:
    """The directory of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file() and "site-packages" not in p.parts)


def read_bytes(path: str | os.PathLike | None = None, max_bytes: int | None = None, pattern: str = "*") -> bytes:
    """The bytes of a file, or of every file under a directory (sorted, so the corpus is reproducible).

    path=None reads the standard library's *.py sources. `max_bytes` keeps the first bytes only.
    """
    integer("max_bytes", max_bytes, 1, allowed=(None,))
    root, pattern = (stdlib_dir(), "*.py") if path is None else (Path(path).expanduser(), pattern)
    if not root.exists():
        raise FileNotFoundError(f"`path` {os.fspath(root)!r} does not exist: give a text file or a directory of them.")
    files = [root] if root.is_file() else _files(root, pattern)
    chunks, size = [], 0
    for file in files:
        data = file.read_bytes()
        chunks.append(data)
        size += len(data)
        if max_bytes is not None and size >= max_bytes:
            break
    text = b"\n".join(chunks)[:max_bytes]
    if len(text) == 0:
        raise ValueError(
            f"`path` {os.fspath(root)!r} holds no text (no files matching {pattern!r}, or only empty ones)."
        )
    return text
