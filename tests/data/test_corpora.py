"""The text corpora (data/corpora.py): a file, a directory in sorted order, the stdlib default."""

import pytest

from lightning_hybrid.data.corpora import read_bytes, stdlib_dir


def test_a_directory_reads_its_files_in_sorted_order_up_to_max_bytes(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"second")
    (tmp_path / "a.txt").write_bytes(b"first")
    assert read_bytes(tmp_path).startswith(b"first") and b"second" in read_bytes(tmp_path)
    assert read_bytes(tmp_path, max_bytes=3) == b"fir"
    assert read_bytes(tmp_path / "b.txt") == b"second"


def test_the_default_is_the_standard_librarys_source():
    assert (stdlib_dir() / "os.py").is_file()
    assert b"def " in read_bytes(None, max_bytes=100_000)


def test_a_missing_path_an_empty_one_and_a_bad_limit_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path` '.*nope' does not exist"):
        read_bytes(tmp_path / "nope")
    with pytest.raises(ValueError, match="holds no text"):
        read_bytes(tmp_path)
    with pytest.raises(ValueError, match="`max_bytes` must be a positive integer or None, got 0"):
        read_bytes(None, max_bytes=0)
