import pytest
import torch

from lightning_hybrid.data import TextDataModule, read_bytes, stdlib_dir


def test_default_corpus_is_the_stdlib_source():
    raw = read_bytes(max_bytes=50_000)
    assert len(raw) == 50_000
    first = sorted(p for p in stdlib_dir().rglob("*.py") if "site-packages" not in p.parts)[0]
    assert raw.startswith(first.read_bytes()[:1000])


def test_byte_windows_are_shifted_targets(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(32, 127)) * 10)  # printable ASCII: text, and each byte its own value
    dm = TextDataModule(path=text, block_size=8, batch_size=4, val_windows=10)
    dm.setup()
    x, y = dm.train_set[3]
    assert x.tolist() == list(range(35, 43)) and y.tolist() == list(range(36, 44))
    assert dm.vocab_size == 256 and len(dm.train_set) == 855 - 8
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == yb.shape == (4, 8)


def test_char_tokenizer_uses_the_sorted_alphabet(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcab" * 100)
    dm = TextDataModule(path=text, tokenizer="char", block_size=4, val_windows=5)
    dm.setup()
    assert dm.vocab_size == 3
    assert dm.train_set[0][0].tolist() == [0, 1, 2, 0]


def test_validation_windows_are_fixed_and_cover_the_held_out_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(32, 127)) * 100)
    a, b = (
        TextDataModule(path=text, block_size=16, val_windows=7),
        TextDataModule(path=text, block_size=16, val_windows=7),
    )
    a.setup()
    b.setup()
    assert len(a.val_set) == 7
    assert torch.equal(a.val_set.starts, b.val_set.starts)
    assert a.val_set.starts[0] == 0 and a.val_set.starts[-1] == len(a.val_set.tokens) - 17


def test_directory_of_files(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"file {i} " * 50)
    assert read_bytes(tmp_path).count(b"file") == 150


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tokenizer": "bpe"}, r"`tokenizer` must be one of 'byte', 'char'; got 'bpe'"),
        ({"val_fraction": 1.0}, r"`val_fraction` must be a finite number in \(0, 1\), got 1.0"),
        ({"block_size": 0}, "`block_size` must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "`batch_size` must be a positive integer, got 2.5"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TextDataModule(**kwargs)


def test_missing_empty_and_short_corpora(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path` '.*nope' does not exist"):
        read_bytes(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no text"):
        read_bytes(tmp_path / "empty")
    with pytest.raises(ValueError, match="`max_bytes` must be a positive integer or None, got 0"):
        read_bytes(max_bytes=0)
    short = tmp_path / "short.txt"
    short.write_text("tiny text")
    with pytest.raises(ValueError, match="too short for block_size=64"):
        TextDataModule(path=short).setup()


def test_a_validation_split_of_few_batches_warns(tmp_path):
    from lightning_hybrid.data import TextDataModule

    path = tmp_path / "short.txt"
    path.write_text("to be or not to be, " * 40)
    data = TextDataModule(path=path, tokenizer="char", block_size=8, batch_size=12, val_windows=24)
    with pytest.warns(UserWarning, match=r"makes only 2 batch\(es\) of 12 windows"):
        data.setup("fit")


def test_a_held_out_fraction_is_spread_through_the_training_text_in_chunks(tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(32, 127)) * 10)  # 950 bytes: 855 train, 95 validate
    plain = TextDataModule(path=text, block_size=8, batch_size=4, val_windows=10)
    held = TextDataModule(
        path=text, block_size=8, batch_size=4, val_windows=10, heldout_fraction=0.25, heldout_chunk=100
    )
    plain.setup(), held.setup()
    # oracle: the split by hand: of the 100-byte chunks 0..8, chunks 3 and 7 (bytes 300-399 and 700-799)
    # hold out; a training window (9 bytes) touches no held-out byte, a held-out one lies inside a chunk
    held_bytes = set(range(300, 400)) | set(range(700, 800))
    train_starts = [s for s in range(855 - 8) if not held_bytes & set(range(s, s + 9))]
    held_starts = [s for s in range(855 - 8) if set(range(s, s + 9)) <= held_bytes]
    assert held.train_set.starts.tolist() == train_starts and held.heldout_set.starts.tolist() == held_starts
    assert plain.train_set.starts.tolist() == list(range(855 - 8)) and len(plain.heldout_set) == 0
    torch.testing.assert_close(held.val_set.stacked(0, 10)[0], plain.val_set.stacked(0, 10)[0], rtol=0, atol=0)
    x, _ = next(iter(held.heldout_dataloader()))
    assert x.shape == (4, 8)
    with pytest.raises(ValueError, match="`heldout_fraction` must be"):
        TextDataModule(path=text, heldout_fraction=1.0)
    with pytest.raises(ValueError, match="heldout_chunk=4 tokens leaves"):
        TextDataModule(path=text, block_size=8, val_windows=10, heldout_fraction=0.5, heldout_chunk=4).setup()


def test_a_run_that_ends_within_its_first_epoch_holds_nothing_out(tmp_path, caplog):
    import lightning.pytorch as pl

    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(32, 127)) * 10)  # 847 training windows of 8 bytes
    kwargs = {"path": text, "block_size": 8, "batch_size": 4, "val_windows": 10, "heldout_fraction": 0.25}
    kwargs["heldout_chunk"] = 100
    for max_steps, always, held in ((211, False, 0), (212, False, 184), (211, True, 184)):
        dm = TextDataModule(**kwargs, heldout_in_one_epoch_runs=always)
        dm.trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False)
        dm.setup("fit")
        # oracle: 211 steps of 4 windows draw 844 of the 847 (one epoch); 212 draw 848, past it; held out:
        # chunks 3 and 7 of 100 bytes, 92 windows of 9 bytes each
        assert len(dm.heldout_set) == held, (max_steps, always)
    with pytest.raises(ValueError, match="`heldout_in_one_epoch_runs` must be True or False"):
        TextDataModule(path=text, heldout_in_one_epoch_runs="no")
