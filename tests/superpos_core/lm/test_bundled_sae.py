"""The SAE shipped for the offline SmolLM2: what its provenance says, in the format SAELens reads, and dashboards
whose numbers are this SAE on this model."""

import hashlib
import json

import numpy as np
import pytest

from superpos_core import lm
from superpos_core.lm import features
from superpos_core.sae import load_pretrained_sae

MODEL = "smollm2-135m-offline"
FOLDER = features.BUNDLED[MODEL]
MB = 1_000_000


@pytest.fixture(scope="module")
def provenance():
    return json.loads((FOLDER / "provenance.json").read_text())


def test_the_files_are_what_the_provenance_names_and_each_fits_a_space_without_lfs(provenance):
    weights = FOLDER / "sae_weights.safetensors"
    assert provenance["sha256"]["sae_weights.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    for path in FOLDER.iterdir():
        assert path.stat().st_size <= 10 * MB, path.name
    assert provenance["model"] == MODEL and "reproduce" in provenance and provenance["recipe"]["seed"] == 0
    assert set(provenance["held_out"]) >= {"explained_variance", "l0", "dead", "dense", "rows"}
    assert set(provenance["ce_loss"]) >= {"clean", "spliced", "zeroed", "recovered", "windows"}


def test_our_loader_reads_it_as_the_model_reads_text(provenance):
    model_sae = load_pretrained_sae(FOLDER)
    assert model_sae.hook_name == f"blocks.{provenance['layer']}.hook_resid_pre"
    assert model_sae.prepend_bos and model_sae.context_size == 256 and not model_sae.center_writing_weights
    assert model_sae.d_in == 576 and model_sae.d_sae == provenance["recipe"]["n_latents"]
    cfg = json.loads((FOLDER / "cfg.json").read_text())
    assert cfg["architecture"] == "standard" and cfg["hook_layer"] == provenance["layer"]


@pytest.mark.slow  # the real SmolLM2 reads forty contexts
def test_a_top_example_fires_again_when_its_text_is_read_through_the_model():
    loaded = lm.load(MODEL)
    found = features.feature_sae(MODEL)
    firing = np.flatnonzero(found.dashboards.arrays["density"] > 1e-4)
    checked = 0
    for feature in np.random.default_rng(0).permutation(firing)[:40]:
        example = features.feature_dashboard(found, loaded.tokenizer, int(feature))["top_examples"][0]
        text = "".join(example["tokens"])
        summary = features.text_features(found, loaded, text, k=found.d_sae)
        if summary["tokens"] != example["tokens"]:  # cut mid-word or mid-space at its ends: read differently
            continue
        at = dict(map(tuple, summary["per_token"][example["position"]]))
        assert at.get(int(feature), 0) > 0, (int(feature), text)
        checked += 1
        if checked == 5:
            break
    assert checked >= 3
