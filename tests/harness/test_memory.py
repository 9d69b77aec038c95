"""held_bytes: distinct tensor storages an object holds beyond the model's."""

import torch

from lightning_hybrid.harness.memory import held_bytes, storages_of


class Holder:
    def __init__(self, model: torch.nn.Module) -> None:
        self.params = list(model.parameters())  # the model's own: not counted
        self.ema = [torch.zeros(10, 4), torch.zeros(4)]  # 40 + 4 floats: 176 bytes
        self.view = self.ema[0][:2]  # a view of the first: counted once
        self.nested = {"buf": torch.zeros(8, dtype=torch.float64)}  # 64 bytes
        self.net = torch.nn.Linear(2, 1, bias=False)  # a module of its own: 2 floats, 8 bytes
        self.myself = self  # cycles end


def test_each_storage_counts_once_and_the_model_not_at_all():
    model = torch.nn.Linear(4, 10)
    model(torch.ones(1, 4)).sum().backward()
    exclude = storages_of(model.parameters())
    assert held_bytes(Holder(model), exclude) == 176 + 64 + 8
    assert held_bytes(Holder(model), set()) == 176 + 64 + 8 + (40 + 10) * 4  # the parameters, no grads


def test_optimizer_state_bytes_are_adams_two_moments():
    model = torch.nn.Linear(4, 10)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    # exp_avg and exp_avg_sq for 50 floats, plus a 4-byte float32 step counter per parameter
    assert held_bytes(optimizer.state, storages_of(model.parameters())) == 2 * 50 * 4 + 2 * 4
