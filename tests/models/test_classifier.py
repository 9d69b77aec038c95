"""MLPClassifier: shapes, the head the default QAT rule keeps, learning a separable task, its checks."""

import pytest
import torch

from lightning_hybrid.models import MLPClassifier
from lightning_hybrid.quant.convert import convert


def test_logits_and_the_head_stays_full_precision_under_qat():
    model = MLPClassifier(in_features=6, num_classes=3, hidden=16, n_hidden=2)
    assert model(torch.zeros(5, 6)).shape == (5, 3)
    report = convert(model)
    assert len(report.converted) == 2 and report.skipped == {"head": "output head (default exclude rule)"}


def test_it_learns_a_separable_task():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()  # the sign of one feature
    model = MLPClassifier(in_features=4, num_classes=2, hidden=16, n_hidden=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        model._loss((x, y)).backward()
        optimizer.step()
    assert (model(x).argmax(-1) == y).float().mean() > 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 0}, "`hidden` must be a positive integer, got 0"),
        ({"n_hidden": 1.5}, "`n_hidden` must be a positive integer, got 1.5"),
        ({"dropout": -0.1}, "`dropout`"),
        ({"optimizer": "sgd"}, "`optimizer` must be one of"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**kwargs)
