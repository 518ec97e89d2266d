import torch

from superpos_core import mnist
from superpos_core.attribution import integrated_gradients
from tests import helpers


def test_completeness_on_the_shipped_model():
    model = mnist.load_simplenet()
    digits = helpers.sample().test
    blank = mnist.normalize(torch.zeros(28, 28).numpy())[0]
    for i in range(5):
        x = mnist.bytes_to_input(digits.images[i : i + 1])[0]
        with torch.no_grad():
            logits = model(torch.stack([x, blank]))
        target = int(logits[0].argmax())
        attributions = integrated_gradients(model, x, target, blank, steps=128)
        assert attributions.shape == (784,)
        expected = float(logits[0, target] - logits[1, target])
        assert abs(float(attributions.sum()) - expected) < 0.02 * abs(expected) + 0.05
        # Pixels that are blank in the digit get no attribution: nothing changed there.
        assert torch.all(attributions[x == blank] == 0)
