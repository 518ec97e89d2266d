"""The language-model tab as a learner meets it, in a real browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import re

import pytest
import torch
from playwright.sync_api import expect

from demos import lm as lm_tab
from superpos_core import lm

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")


@pytest.fixture(scope="module")
def page(server_url, browser):
    page = browser.new_page()
    page.goto(server_url)
    page.get_by_role("tab", name="Language model").click()
    yield page
    page.close()


def test_the_tab_opens_with_its_example_analysed(page):
    """No click: the default example's pictures are there when the tab opens (kept from the server's warm-up)."""
    text, model, layer, _ = lm_tab.opening_inputs(torch.device("cpu"))
    expect(page.locator("#lm-text textarea")).to_have_value(text)
    expect(page.locator("#lm-status")).to_contain_text(f"at layer {layer} of", timeout=60_000)
    expect(page.locator("#lm-next")).to_contain_text("%")
    for figure in ("#lm-heatmap", "#lm-ranks"):
        page.locator(figure).scroll_into_view_if_needed()
        expect(page.locator(f"{figure} img")).to_be_visible(timeout=30_000)


def test_models_that_are_not_here_are_marked_in_the_list(page):
    page.locator("#lm-model input").click()
    for key in lm.CATALOGUE:
        expect(page.get_by_role("option", name=lm.choice_label(key), exact=True)).to_be_visible()
    page.keyboard.press("Escape")
    if not lm.available("gpt2"):
        expect(page.locator("#lm-model-status")).to_contain_text("Not on this machine: GPT-2 small")


def test_typing_a_layer_and_pressing_enter_analyses_that_layer(page):
    status = page.locator("#lm-status")
    expect(status).to_contain_text("tokens", timeout=60_000)
    box = page.locator("#lm-layer input[type=number]")
    box.fill("3")
    expect(box).to_have_value("3")
    box.press("Enter")
    expect(status).to_contain_text("at layer 3 of", timeout=30_000)


def test_an_emoji_is_shown_whole_not_as_bytes(page):
    page.locator("#lm-text textarea").fill("Superposition lets a network store more features than it has neurons. 🧠")
    page.get_by_role("button", name="Analyse the text").click()
    status = page.locator("#lm-status")
    expect(status).to_contain_text("marks the others ⋯", timeout=60_000)
    expect(status).not_to_contain_text("<0x")


def test_a_learner_sees_each_tokens_features_and_opens_a_features_dashboard(page):
    """Offline, with SmolLM2: the SAE trained here finds features on every token of the learner's text; a click on a
    token lists its own, a click on one of them opens its dashboard; a word searched lists the corpus's features."""
    # As the page opens, before any click: the default text's features, and the strongest one's dashboard.
    header = page.locator("#lm-feature-header")
    expect(header).to_contain_text("Feature ", timeout=90_000)
    expect(page.locator("#lm-features-about")).to_contain_text("CE loss recovered")
    page.locator("#lm-features-density").scroll_into_view_if_needed()
    expect(page.locator("#lm-features-density img")).to_be_visible()

    page.locator("#lm-text textarea").fill("And God said unto Moses, Let my people go.")
    page.get_by_role("button", name="Analyse the text").click()
    tokens = page.locator("#lm-features-tokens")
    moses = tokens.get_by_text("Moses", exact=False)
    expect(moses).to_be_visible(timeout=60_000)  # the new text's tokens, shaded by their strongest feature
    moses.click()
    status = page.locator("#lm-features-status")
    expect(status).to_contain_text("Moses", timeout=30_000)
    expect(status).to_contain_text("strongest features")
    choice = page.locator("#lm-features-picked label").first
    number = choice.inner_text().split("·")[0].strip().lstrip("#")
    choice.click()
    expect(header).to_contain_text(f"Feature {number} of", timeout=30_000)
    expect(page.locator("#lm-feature-index input")).to_have_value(number)
    expect(page.locator("#lm-feature-top .superpos-example").first).to_be_visible()
    expect(page.locator("#lm-feature-logits")).to_contain_text("promoted")

    page.locator("#lm-features-word input, #lm-features-word textarea").first.fill("Pharaoh")
    page.get_by_role("button", name="Features that fire on it").click()
    expect(status).to_contain_text("times in the corpus", timeout=30_000)

    page.locator("#lm-feature-index input").fill("7")
    page.get_by_role("button", name="Open its dashboard").click()
    expect(header).to_contain_text("Feature 7 of", timeout=30_000)


def test_a_learner_steers_with_a_features_dashboard_and_can_stop_it(page):
    """From a feature's dashboard: Steer writes the baseline and the steered continuation side by side as the tokens
    come; the steered one changes; Stop keeps what is written; steering again works."""
    page.locator("#lm-feature-index input").fill("1189")  # "king" before a name
    page.get_by_role("button", name="Open its dashboard").click()
    expect(page.locator("#lm-feature-header")).to_contain_text("Feature 1189 of", timeout=30_000)
    steer = page.locator("#lm-steer-run")
    expect(steer).to_have_text("Steer with feature #1189")
    steer.scroll_into_view_if_needed()
    steer.click()
    status = page.locator("#lm-steer-status")
    expect(status).to_contain_text("KL =", timeout=30_000)
    baseline, steered = page.locator("#lm-steer-baseline textarea"), page.locator("#lm-steer-steered textarea")
    expect(steered).to_have_value(re.compile(r"\S"), timeout=30_000)  # the first tokens, before the rest
    expect(status).to_contain_text("Done: ", timeout=60_000)
    expect(page.locator("#lm-steer-shift")).to_contain_text("gained")
    assert steered.input_value() != baseline.input_value() and not steered.input_value().endswith("▌")

    page.locator("#lm-steer-tokens input[type=number]").fill("64")
    page.locator("#lm-steer-tokens input[type=number]").press("Enter")
    page.locator("#lm-steer-decoding").get_by_text("sampled", exact=False).click()
    steer.click()
    expect(status).to_contain_text("Writing:", timeout=30_000)
    expect(status).to_contain_text("sampling with seed 0")
    page.locator("#lm-steer-stop").click()
    expect(status).to_contain_text("Stopped after", timeout=10_000)
    written = steered.input_value()
    assert written and not written.endswith("▌")
    page.wait_for_timeout(1500)
    assert steered.input_value() == written  # nothing more arrives after Stop
    page.locator("#lm-steer-tokens input[type=number]").fill("4")
    page.locator("#lm-steer-tokens input[type=number]").press("Enter")
    steer.click()
    expect(status).to_contain_text("Done: ", timeout=60_000)
