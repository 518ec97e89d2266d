import pytest
import torch
from torch import nn

from superpos_core.capture import capture_activations, hook_count
from superpos_core.mnist import SimpleNet


def nested_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))


def test_names_are_those_of_named_modules():
    model = nested_model()
    x = torch.randn(5, 4)
    with capture_activations(model, ["0", "1.1"]) as acts:
        out = model(x)
    assert set(acts) == {"0", "1.1"}
    torch.testing.assert_close(acts["0"], model[0](x))
    torch.testing.assert_close(acts["1.1"], out)
    assert not acts["1.1"].requires_grad  # detached by default


def test_captures_latest_forward_and_can_keep_graph():
    model = SimpleNet()
    with capture_activations(model, ["fc1"], detach=False) as acts:
        model(torch.zeros(1, 784))
        model(torch.ones(2, 784))
    assert acts["fc1"].shape == (2, 128)
    assert acts["fc1"].requires_grad


def test_no_hook_left_after_a_thousand_calls():
    model = SimpleNet().eval()
    x = torch.randn(1, 784)
    for _ in range(1000):
        with torch.no_grad(), capture_activations(model, ["fc1", "relu1", "fc2", "relu2", "fc3"]) as acts:
            model(x)
        assert len(acts) == 5
    assert hook_count(model) == 0


def test_hooks_removed_when_the_block_raises():
    model = SimpleNet()
    with pytest.raises(RuntimeError):
        with capture_activations(model, ["fc1", "fc2"]):
            assert hook_count(model) == 2
            model(torch.zeros(1, 5))  # wrong shape: the forward pass fails inside the block
    assert hook_count(model) == 0


def test_unknown_name_adds_no_hook():
    model = SimpleNet()
    with pytest.raises(KeyError, match="fc9"):
        with capture_activations(model, ["fc1", "fc9"]):
            pass
    assert hook_count(model) == 0


def test_tuple_outputs_keep_the_first_element():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, "extra"

    model = nn.Sequential()
    model.add_module("pair", Pair())
    with capture_activations(model, ["pair"]) as acts:
        model(torch.ones(3))
    torch.testing.assert_close(acts["pair"], torch.full((3,), 2.0))


def test_concurrent_blocks_on_a_shared_model_see_only_their_own_pass():
    import threading

    model = SimpleNet().eval()
    start = threading.Barrier(2)
    results = {}

    def run(value: float):
        x = torch.full((1, 784), value)
        with torch.no_grad(), capture_activations(model, ["fc1"]) as acts:
            start.wait()  # both blocks are open: each thread's hooks sit on the same module
            for _ in range(50):
                model(x)
                assert torch.equal(acts["fc1"], model.fc1(x))
        results[value] = True

    threads = [threading.Thread(target=run, args=(v,)) for v in (0.0, 1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0.0: True, 1.0: True}
    assert hook_count(model) == 0
