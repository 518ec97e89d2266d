import threading

import numpy as np
import pytest
import torch
from torch import nn

from superpos_core import mnist, network, toy
from superpos_core.capture import hook_count
from tests import helpers


def test_simplenet_rows_have_shapes_parameters_and_marks():
    model = mnist.SimpleNet()
    rows = network.describe(model, torch.zeros(3, 784), captured=["fc1", "fc3"])
    by_name = {row.name: row for row in rows}
    assert [row.name for row in rows] == ["", "fc1", "relu1", "fc2", "relu2", "fc3"]  # named_modules() order
    assert by_name[""].kind == "SimpleNet" and by_name[""].depth == 0 and by_name[""].output_shape == (3, 10)
    assert by_name["fc1"].output_shape == (3, 128) and by_name["fc1"].parameters == 784 * 128 + 128
    assert by_name["relu2"].output_shape == (3, 64) and by_name["relu2"].parameters == 0
    assert network.total_parameters(rows) == sum(p.numel() for p in model.parameters()) == 109_386
    assert [row.name for row in rows if row.captured] == ["fc1", "fc3"]
    assert all(row.calls == 1 for row in rows)


def test_hooks_are_removed_even_when_the_forward_fails():
    model = mnist.SimpleNet()
    with pytest.raises(RuntimeError):
        network.describe(model, torch.zeros(1, 5))  # the wrong width: fc1 refuses it
    assert hook_count(model) == 0
    network.describe(model, torch.zeros(1, 784))
    assert hook_count(model) == 0


def test_unknown_captured_names_are_refused_before_running():
    with pytest.raises(KeyError, match="fc9"):
        network.describe(mnist.SimpleNet(), torch.zeros(1, 784), captured=["fc9"])


def test_nested_modules_shared_and_unused_ones():
    shared = nn.Linear(4, 4)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(shared, nn.ReLU())
            self.unused = nn.Linear(4, 2)

        def forward(self, x):
            return self.block(self.block(x))

    rows = {row.name: row for row in network.describe(Twice(), torch.zeros(2, 4))}
    assert rows["block"].calls == 2 and rows["block.0"].depth == 2 and rows["block.0"].output_shape == (2, 4)
    assert rows["unused"].calls == 0 and rows["unused"].output_shape is None
    text = network.as_text(list(rows.values()))
    assert "not run" in text and "(2, 4) ×2" in text


def test_renderings_mark_captured_and_shown_and_escape_names():
    model = nn.Sequential()
    model.add_module("<script>", nn.Linear(2, 3))
    rows = network.describe(model, torch.zeros(1, 2), captured=["<script>"])
    page = network.as_html(rows, highlight="<script>", printed=repr(model))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "◀ shown" in page and "9 parameters" in page and "<details>" in page
    text = network.as_text(rows, highlight=None)
    assert "◀ captured" in text and text.splitlines()[0].split() == ["module", "type", "output", "shape", "parameters"]


def test_a_language_model_is_described_by_its_keyword_inputs(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = helpers.save_tiny_gpt2(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    rows = network.describe(
        model,
        {"input_ids": torch.tensor([[1, 2, 3]])},
        captured=["transformer.h.0", "transformer.h.1"],
        use_cache=False,
    )
    by_name = {row.name: row for row in rows}
    assert by_name["transformer.h.1"].output_shape == (
        1,
        3,
        helpers.TINY_D_MODEL,
    )  # a block returns a tuple: its first tensor
    assert by_name[""].output_shape[:2] == (1, 3)  # the logits, from a ModelOutput
    assert hook_count(model) == 0


def test_only_the_describing_threads_forward_is_seen():
    """A server shares one model: another user's forward pass while a view is built must not be counted."""
    model = mnist.SimpleNet()
    started, go_on = threading.Event(), threading.Event()
    original = model.fc2.forward

    def slow_fc2(x):
        started.set()
        go_on.wait(5)
        return original(x)

    model.fc2.forward = slow_fc2
    rows = {}
    describer = threading.Thread(
        target=lambda: rows.update({r.name: r for r in network.describe(model, torch.zeros(1, 784))})
    )
    describer.start()
    started.wait(5)
    model.fc1(torch.zeros(7, 784))  # someone else's forward, on this thread, while the hooks are in place
    go_on.set()
    describer.join(5)
    assert rows["fc1"].calls == 1 and rows["fc1"].output_shape == (1, 128)


def test_the_toy_model_module_is_the_trained_formula():
    result = toy.train(toy.ToyConfig(sparsity=0.9, steps=200))
    model = toy.ToyModel.from_result(result)
    x = torch.rand(6, 5)
    expected = np.maximum(x.numpy() @ result.W.T @ result.W + result.b, 0)  # x' = ReLU(WᵀWx + b), batch as rows
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    rows = {row.name: row for row in network.describe(model, torch.zeros(1, 5), captured=["hidden"])}
    assert rows[""].parameters == 5 * 2 + 5  # W counted once, though the readout uses it too
    assert rows["hidden"].output_shape == (1, 2) and rows["readout"].output_shape == (1, 5)
    assert "weight=hidden.weight.T" in repr(model)
