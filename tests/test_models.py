"""Every registered model builds, runs forward and backward, and reports its size."""

import pytest
import torch

from ferkit.models import count_macs, count_parameters, create_model, list_models, model_entry
from ferkit.models.table import model_rows, models_table


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    out = model(x)
    assert out.shape == (4, 7)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_num_classes_and_size(name):
    model = create_model(name, num_classes=8)
    assert model.eval()(torch.zeros(1, 1, 48, 48)).shape == (1, 8)
    assert count_parameters(model) > 10_000
    assert count_macs(model) > count_parameters(model) / 10


# The seed networks' parameter counts against their seeds' summaries: tests/test_seeds.py.


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="resnet_s"):
        create_model("no_such_net")


def test_models_table_lists_every_model():
    table = models_table()
    first_words = [line.split()[0] for line in table.splitlines()[1:] if line.strip()]
    for name in list_models():  # a row of its own, not a longer name that contains it (resnet_s in resnet_sw)
        assert name in first_words, name
    rows = {r["name"]: r for r in model_rows()}
    for name in list_models():  # each at its own input: 3-channel models (seed 004's) counted as built
        entry = model_entry(name)
        assert rows[name]["input"] == f"{entry.channels}x{entry.input_size}x{entry.input_size}", name
        assert rows[name]["params"] == count_parameters(create_model(name, in_chans=entry.channels)), name
