"""ClusterDataModule end to end: batches and their cluster ids, the on-disk cache, "auto", bad input,
the Trainer (AuxLRController reads the ids), and an exact mid-epoch resume."""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import Dataset, TensorDataset

from helpers.models import NestedClassifier
from lightning_hybrid import AuxLRController, ClusterDataModule, ClusteredTextDataModule
from lightning_hybrid.data import ClusteredBatch


def _blobs(n=240, d=16, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 8
    truth = torch.randint(k, (n,), generator=g)
    x = centres[truth] + torch.randn(n, d, generator=g)
    return TensorDataset(x, x[:, :3].argmax(dim=1)), truth


def _module(tmp_path, data=None, **kwargs):
    data = data if data is not None else _blobs()[0]
    kwargs = {"num_clusters": 4, "batch_size": 16, "cache_dir": tmp_path / "cache", **kwargs}
    dm = ClusterDataModule(data, **kwargs)
    dm.setup("fit")
    return dm


def test_tuple_batches_unpack_as_before_and_carry_their_ids(tmp_path):
    dataset, truth = _blobs()
    dm = _module(tmp_path, dataset, policy="homogeneous")
    batch = next(iter(dm.train_dataloader()))
    x, y = batch
    assert isinstance(batch, ClusteredBatch) and x.shape == (16, 16) and y.shape == (16,)
    # the ids are the clustering's, one cluster per homogeneous batch, and the clusters are the planted ones
    rows = [int((dataset.tensors[0] == row).all(dim=1).nonzero()) for row in x]
    assert batch.cluster.tolist() == dm.clustering.labels[rows].tolist()
    assert len(set(batch.cluster.tolist())) == 1 and len(set(truth[rows].tolist())) == 1
    moved = batch.to(torch.float64)  # Lightning moves batches through .to(); the ids survive it, as int64
    assert isinstance(moved, ClusteredBatch) and moved[0].dtype == torch.float64
    assert moved.cluster.dtype == torch.int64 and torch.equal(moved.cluster, batch.cluster)


class _Dicts(Dataset):
    def __init__(self, key="x"):
        self.data, self.key = _blobs()[0].tensors[0], key

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {self.key: self.data[i]}


def test_dict_batches_get_the_ids_under_cluster_key(tmp_path):
    batch = next(iter(_module(tmp_path, _Dicts(), cluster_key="group").train_dataloader()))
    assert set(batch) == {"x", "group"} and batch["group"].shape == (16,)


def test_a_dict_key_clash_is_a_clear_error(tmp_path):
    dm = _module(tmp_path, _Dicts(key="cluster"))
    with pytest.raises(ValueError, match="already have a 'cluster' entry: pass another `cluster_key`"):
        next(iter(dm.train_dataloader()))


class _Tensors(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        return torch.full((4,), float(i % 8)) + torch.randn(4) * 0.01


def test_bare_tensor_items_need_attach_cluster_false(tmp_path):
    with pytest.raises(TypeError, match="cannot attach cluster ids to a batch of type Tensor"):
        next(iter(_module(tmp_path, _Tensors()).train_dataloader()))
    batch = next(iter(_module(tmp_path, _Tensors(), attach_cluster=False).train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape == (16, 4)


def test_assignments_are_cached_and_reused(tmp_path):
    first = _module(tmp_path)
    assert not first.clustering.from_cache and len(list((tmp_path / "cache").iterdir())) == 1
    again = _module(tmp_path)
    assert again.clustering.from_cache and torch.equal(again.clustering.labels, first.clustering.labels)
    _module(tmp_path, num_clusters=3)  # another k: another file, not the cached one
    _module(tmp_path, data=_blobs(seed=1)[0])  # other data
    assert len(list((tmp_path / "cache").iterdir())) == 3
    assert not _module(tmp_path, cache=False).clustering.from_cache


def test_a_changed_encoder_never_reuses_old_clusters(tmp_path):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(16, 8)
    features = lambda batch: encoder(batch[0])  # noqa: E731
    first = _module(tmp_path, features=features, feature_name="probe")
    assert _module(tmp_path, features=features, feature_name="probe").clustering.from_cache
    with torch.no_grad():
        encoder.weight.mul_(-1)  # same name, other weights: the key's digest of its output changes
    assert not _module(tmp_path, features=features, feature_name="probe").clustering.from_cache
    assert first.clustering.num_clusters == 4


def test_auto_chooses_k_by_silhouette_and_prints_the_curve(tmp_path, capsys, caplog):
    dm = _module(tmp_path, _blobs(n=600, k=6)[0], num_clusters="auto", auto_candidates=[2, 4, 6, 8])
    assert dm.clustering.num_clusters == 6
    assert [row["k"] for row in dm.clustering.curve] == [2, 4, 6, 8]
    assert "num_clusters='auto' chose k=6" in capsys.readouterr().out + caplog.text
    assert _module(tmp_path, _blobs(n=600, k=6)[0], num_clusters="auto", auto_candidates=[2, 4, 6, 8]).clustering.curve


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_clusters": 0}, ValueError, r"`num_clusters` must be a positive integer or 'auto', got 0"),
        ({"policy": "sorted"}, ValueError, r"`policy` must be one of .*got 'sorted'"),
        ({"batch_size": None}, ValueError, r"`batch_size` is None and the wrapped data has no `batch_size`"),
        ({"features": "pixels"}, ValueError, r"`features` must be one of 'auto', 'ngrams', 'flattened'; got 'pixels'"),
        ({"backend": "sklearn"}, ValueError, r"`backend` must be one of 'torch', 'faiss'; got 'sklearn'"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        ClusterDataModule(_blobs()[0], **{"batch_size": 16, **kwargs})


def test_more_clusters_than_items_and_a_single_item_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`num_clusters`=300 is larger than the number of points \(240\)"):
        _module(tmp_path, num_clusters=300)
    one = TensorDataset(torch.randn(1, 4), torch.zeros(1))
    with pytest.raises(ValueError, match=r"the training set has 1 item\(s\); clustering needs at least 2"):
        _module(tmp_path, one, num_clusters=1)


def test_non_finite_features_are_a_clear_error(tmp_path):
    x = torch.randn(50, 4)
    x[7, 2] = float("inf")
    with pytest.raises(ValueError, match=r"1 feature rows are not finite \(NaN or inf\), e.g. rows \[7\]"):
        _module(tmp_path, TensorDataset(x, torch.zeros(50)))


def test_text_corpus_clusters_by_ngrams_and_reads_through_the_text_module(tmp_path):
    dm = ClusteredTextDataModule(max_bytes=60_000, block_size=32, batch_size=8, num_clusters=5, cache_dir=tmp_path)
    dm.setup("fit")
    assert dm.vocab_size == 256 and dm.block_size == 32  # TextDataModule's, read through
    assert dm.clustering.num_clusters == 5 and len(dm.clustering.labels) == len(dm.data.train_set)
    assert all(size > 0 for size in dm.clustering.sizes)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 32) and torch.equal(x[:, 1:], y[:, :-1])
    assert len(dm.val_dataloader()) > 0


def test_held_out_batches_come_from_the_wrapped_data_module(tmp_path):
    dm = ClusteredTextDataModule(
        max_bytes=20_000,
        block_size=32,
        batch_size=8,
        num_clusters=3,
        cache_dir=tmp_path,
        heldout_fraction=0.1,
        heldout_chunk=512,
    )
    dm.setup("fit")
    # oracle: the wrapped TextDataModule's own held-out windows (the last 10% of its training text)
    assert dm.heldout_dataloader().dataset is dm.data.heldout_set and len(dm.data.heldout_set) > 0
    with pytest.raises(ValueError, match="wraps a TensorDataset, which has no heldout_dataloader"):
        _module(tmp_path).heldout_dataloader()


class _SeenBatches(pl.Callback):
    def __init__(self):
        self.inputs, self.clusters = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.inputs.append(batch[0].clone())
        self.clusters.append(batch.cluster.clone())


def _fit(tmp_path, max_steps, callbacks, ckpt_path=None, **kwargs):
    torch.manual_seed(0)
    model = NestedClassifier(d=16)
    dm = ClusterDataModule(
        _blobs(n=160)[0], num_clusters=4, batch_size=16, cache_dir=tmp_path / "cache", policy="balanced"
    )
    trainer = pl.Trainer(
        max_steps=max_steps,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return model, dm


def test_aux_lr_controller_reads_the_cluster_ids_from_the_batches(tmp_path):
    seen, controller = _SeenBatches(), AuxLRController(num_clusters=4)
    _fit(tmp_path, 6, [seen, controller], enable_checkpointing=False)
    assert len(seen.clusters) == 6
    # balanced batches hold every cluster; the controller embeds the ids gathered over ranks
    assert controller._cluster is not None and set(controller._cluster) <= {0, 1, 2, 3}


def test_resume_mid_epoch_continues_with_the_next_batch(tmp_path):
    # 160 items / 16 = 10 batches an epoch; a checkpoint at step 13 lies in the middle of epoch 2
    whole = _SeenBatches()
    model_a, _ = _fit(tmp_path / "a", 25, [whole], enable_checkpointing=False)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=13, save_top_k=-1, filename="{step}")
    _fit(tmp_path / "b", 13, [ckpt])
    resumed = _SeenBatches()
    model_b, _ = _fit(
        tmp_path / "b", 25, [resumed], ckpt_path=str(tmp_path / "ckpt" / "step=13.ckpt"), enable_checkpointing=False
    )
    assert len(resumed.inputs) == 12
    for a, b in zip(whole.inputs[13:], resumed.inputs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_resume_with_another_clustering_is_refused(tmp_path):
    dm = _module(tmp_path)
    other = _module(tmp_path, num_clusters=3)
    with pytest.raises(ValueError, match="Resume with the same settings"):
        other.load_state_dict(dm.state_dict())
