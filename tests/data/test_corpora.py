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


def test_a_binary_file_is_refused_and_a_directorys_binary_files_are_skipped(tmp_path):
    (tmp_path / "lib.so").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"lib.so' is a binary file \(it holds NUL bytes\), not text"):
        read_bytes(tmp_path / "lib.so")
    (tmp_path / "notes.txt").write_text("plain words")
    with pytest.warns(UserWarning, match="skipped 1 binary files"):
        assert read_bytes(tmp_path) == b"plain words"


def test_text_in_another_encoding_is_read_with_data_encoding(tmp_path):
    path = tmp_path / "cp1251.txt"
    path.write_bytes("Привет, мир. ".encode("cp1251") * 20)  # every letter a byte that is not UTF-8
    with pytest.raises(ValueError, match=r"is not utf-8 text \(\d+% of its first bytes do not decode\).*encoding"):
        read_bytes(path)
    assert read_bytes(path, encoding="cp1251") == ("Привет, мир. " * 20).encode("utf-8")  # re-encoded as UTF-8
    with pytest.raises(ValueError, match="`encoding` must be a text encoding Python knows"):
        read_bytes(path, encoding="klingon")
