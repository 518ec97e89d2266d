"""superpos_core/devices.py: choosing the device.

`--device`: every model runs on the device it is given, and a GPU gives the CPU's numbers. On a
machine without a CUDA GPU only the CPU can be checked; the test says so in a warning (shown in the
test report) rather than pretending a comparison was made.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from superpos_core import concepts, conv_rank, lm, resnets, sae, toy
from superpos_core.devices import resolve_device
from superpos_core.mnist_explorer import MnistExplorer
from tests import helpers

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
WORDS = [f" {w}" for words in concepts.CONCEPTS.values() for w in words]
TEXT = "It was the best of times, it was the worst of times."


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return helpers.save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), WORDS)


def test_auto_is_the_gpu_when_there_is_one_and_a_missing_one_is_an_error():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device("auto") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu': use auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="PyTorch sees no CUDA GPU"):
            resolve_device("cuda")  # never a silent fallback to the CPU


def on(model: torch.nn.Module, device: str) -> bool:
    return all(p.device.type == device for p in model.parameters())


def everything_on(device: str, tiny_folder) -> dict[str, np.ndarray]:
    """Each tab's science on ``device``: the numbers it shows, and a check that it ran there."""
    assert resolve_device(device).type == device  # as app.py chooses it (full float32 on a GPU)
    numbers = {}
    digit = helpers.digit_on_paper(helpers.sample().test.images[0])
    explorer = MnistExplorer(device=device)
    assert on(explorer.model, device)
    result = explorer.analyse(digit)
    numbers["mnist probabilities"] = np.array(result.summary["probabilities"])
    numbers["mnist fc1"] = np.array(result.summary["activations"]["fc1"])

    loaded = resnets.load("mnist-resnet", device)
    assert on(loaded.model, device)
    analysis = resnets.analyse_image(loaded, 255 - np.kron(helpers.sample().test.images[1], np.ones((4, 4), np.uint8)))
    numbers["resnet top-5"] = np.array([p for _, p in analysis.top5])
    _, batches = resnets.reference_batches(loaded)
    assert batches[0].device.type == device
    numbers["resnet reference ranks (2 batches)"] = np.array(
        [row.effective_rank for row in conv_rank.rank_table(loaded.model, batches[:2])]
    )

    config = toy.ToyConfig(5, 2, sparsity=0.9, steps=200, restarts=2)
    numbers["toy W"] = toy.train(config, device=device).W

    model = lm.load(tiny_folder, device, allow_any=True)
    assert on(model.model, device) and model.device.type == device
    text = lm.analyse_text(model, TEXT, layer=2)
    numbers["lm hidden states"] = text.hidden_states.numpy()
    numbers["lm next-token probabilities"] = np.array([p for _, p in text.next_tokens])

    activations = torch.as_tensor(text.activations).to(device)  # (T, d_model), as the tab trains on them
    trained = sae.train_course_sae(activations, sae.CourseSAEConfig(n_features=8, epochs=100, seed=0))
    assert on(trained.model, device)
    numbers["course SAE losses"] = trained.loss_history
    numbers["course SAE codes"] = trained.feature_acts

    generator = torch.Generator().manual_seed(0)
    d_model, d_sae = activations.shape[1], 64
    pretrained = sae.PretrainedSAE(
        torch.randn(d_model, d_sae, generator=generator),
        torch.randn(d_sae, d_model, generator=generator),
        torch.randn(d_sae, generator=generator) * 0.1,
        torch.randn(d_model, generator=generator) * 0.1,
        hook_name="blocks.2.hook_resid_pre",
        layer=2,
    ).to(device)
    assert on(pretrained, device)
    with torch.inference_mode():
        numbers["pretrained SAE codes"] = pretrained.encode(activations).cpu().numpy()

    found = concepts.analyse_concepts(model, concepts.CONCEPTS, concepts.default_sentences(), layer=2)
    numbers["concept correlations"] = found.correlations(centred=True)
    return numbers


@pytest.mark.slow
def test_every_model_runs_on_its_device_and_a_gpu_agrees_with_the_cpu(tiny_folder, monkeypatch):
    helpers.model_cache_for_this_test(monkeypatch, resnets.loading, empty=True)
    results = {device: everything_on(device, tiny_folder) for device in DEVICES}
    if DEVICES == ["cpu"]:
        warnings.warn(
            "No CUDA GPU on this machine: every model was checked on the CPU only; the CPU/GPU comparison did not run.",
            stacklevel=1,
        )
    for device in DEVICES[1:]:
        for name, cpu_values in results["cpu"].items():
            np.testing.assert_allclose(
                results[device][name], cpu_values, rtol=1e-3, atol=1e-4, err_msg=f"{name} on {device}"
            )
    assert (
        results["cpu"]["mnist probabilities"].argmax() == helpers.sample().test.labels[0]
    )  # real numbers, not empty ones
    assert len(results["cpu"]["resnet top-5"]) == 5 and results["cpu"]["toy W"].shape == (2, 5)
