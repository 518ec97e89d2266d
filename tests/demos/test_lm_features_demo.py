"""The language-model tab's feature dashboards: the bundled SAE on the offline SmolLM2, as its handlers show it."""

import gradio as gr
import numpy as np
import pytest

from demos import lm_features
from superpos_core import lm
from superpos_core.lm import features
from tests.contracts import summary_keys

pytestmark = pytest.mark.slow  # the real SmolLM2 reads and writes text: not in the quick run (-m "not slow")

MODEL = "smollm2-135m-offline"
TEXT = "And God said unto Moses, Let my people go."
quiet = lambda *a, **k: None  # noqa: E731  stands in for gr.Progress


@pytest.fixture(scope="module")
def found():
    lm.load(MODEL)
    return features.feature_sae(MODEL)


def test_the_features_event_returns_the_contract_first_and_shades_every_token(found):
    shown = lm_features.features_event(TEXT, MODEL, None, progress=quiet)
    assert list(shown) == ["summary", "status", "tokens", "heatmap", "picked"]  # the /lm_features API's order
    assert shown["heatmap"].ndim == 3 and shown["heatmap"].dtype == np.uint8
    summary = shown["summary"]
    assert set(summary) == summary_keys("/lm_features")
    assert summary["layer"] == found.layer and summary["d_sae"] == found.d_sae
    assert "".join(summary["tokens"]) == TEXT
    assert len(shown["tokens"]) == len(summary["tokens"]) and max(score for _, score in shown["tokens"]) == 1.0
    assert 0 < summary["l0"] <= found.d_sae / 10 and "features fire per token" in shown["status"]  # sparse
    picked = shown["picked"]
    assert [value for _, value in picked.choices] == [index for index, _, _ in summary["top_features"]]
    # The SAE's own layer by number is the same as leaving it empty; any other layer is refused, saying which.
    assert lm_features.features_event(TEXT, MODEL, float(found.layer), progress=quiet)["summary"] == summary
    with pytest.raises(gr.Error, match=f"reads layer {found.layer}"):
        lm_features.features_event(TEXT, MODEL, 3, progress=quiet)


def test_a_clicked_token_lists_its_own_strongest_features(found):
    summary = lm_features.features_event(TEXT, MODEL, None, progress=quiet)["summary"]
    position = summary["tokens"].index(" Moses")
    shown = lm_features.token_event(TEXT, MODEL, None, position)
    assert "“␣Moses”" in shown["status"] or "Moses" in shown["status"]
    assert [value for _, value in shown["picked"].choices] == [index for index, _ in summary["per_token"][position]]
    assert "outside the text" in lm_features.token_event(TEXT, MODEL, None, 999)["status"]


def test_a_word_searched_gives_features_that_fire_on_it_across_the_corpus(found):
    shown = lm_features.search_event(MODEL, None, "Moses")
    assert "times in the corpus" in shown["status"] and shown["picked"].choices
    assert "Type a word" in lm_features.search_event(MODEL, None, "  ")["status"]


def test_a_features_dashboard_shows_its_contexts_bands_histogram_and_logits(found):
    feature = int(np.argmax(found.dashboards.arrays["density"] > 0))
    shown = lm_features.feature_event(MODEL, None, feature, progress=quiet)
    assert list(shown) == ["summary", "header", "top", "intervals", "histogram", "logits"]  # the /lm_feature order
    summary = shown["summary"]
    assert set(summary) == summary_keys("/lm_feature") and summary["feature"] == feature
    assert len(summary["top_examples"]) >= 1 and summary["density"] > 0
    assert shown["top"].count('class="superpos-example"') == len(summary["top_examples"])
    assert "font-weight: bold" in shown["top"]  # the strongest token of each context marked
    assert shown["histogram"].ndim == 3 and "promoted" in shown["logits"] and "suppressed" in shown["logits"]
    assert f"Feature {feature} of {found.d_sae:,}" in shown["header"]


def test_bad_features_and_models_get_clear_messages(found):
    for bad in (-1, found.d_sae, 2.5, "seven"):
        with pytest.raises(gr.Error, match="The feature must be a (whole )?number"):
            lm_features.feature_event(MODEL, None, bad, progress=quiet)
    with pytest.raises(gr.Error, match="No SAE with feature dashboards is here for 'distilgpt2'"):
        lm_features.feature_event("distilgpt2", None, 0, progress=quiet)
    assert "choose it above" in lm_features.about("distilgpt2")
    assert "pretrained SAE" in lm_features.about("gpt2")
    assert "explained variance" in lm_features.about(MODEL) and lm_features.density_figure("gpt2") is None
