"""Every experiment a link, in Chromium: an address sets a tab's controls and runs them; Copy link gives it back."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import expect

from demos import lm as lm_tab
from demos import toy as toy_tab

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")


def copied_link(page, tab: str) -> str:
    """Click the tab's Copy link and return the address it gives."""
    page.locator(f"#{tab}-copy-link").click()
    box = page.locator(f"#{tab}-link textarea, #{tab}-link input").first
    expect(box).to_have_value(re.compile(r"^http.*\?tab=" + tab), timeout=10_000)
    return box.input_value()


def query_of(address: str) -> dict:
    return dict(parse_qsl(urlsplit(address).query))


def test_a_toy_link_opens_that_model_trained_and_copy_link_gives_it_back(page, server_url):
    page.goto(server_url + "?tab=toy&n=6&m=2&S=0.99")
    expect(page.locator("#toy-n input[type=number]")).to_have_value("6", timeout=20_000)
    expect(page.locator("#toy-sparsity input")).to_have_value("0.99")
    status = page.locator("#toy-status")
    expect(status).to_contain_text("of 6 features", timeout=30_000)  # trained on open, not the 5-feature opening
    # The answer's text can appear while gradio still lays its progress line ("0.6s Drawing the figures") over it.
    expect(status).not_to_contain_text("Drawing the figures", timeout=30_000)
    shown = status.inner_text()
    address = copied_link(page, "toy")
    assert address.startswith(server_url.rstrip("/"))
    steps, seed = toy_tab.DEFAULTS["steps"], toy_tab.DEFAULTS["seed"]  # not in the link: the tab's own, written out
    assert query_of(address) == {
        "tab": "toy",
        "n": "6",
        "m": "2",
        "S": "0.99",
        "r": "1",
        "steps": str(steps),
        "seed": str(seed),
    }
    # The copied address, opened afresh, shows the same model: same numbers (the link holds the seed).
    page.goto(address)
    # (waited for whole: while the run is under way gradio shows "processing | ..." over the text)
    expect(status).to_have_text(shown, timeout=30_000)
    assert page.locator("#toy-link-note").inner_text().strip() == ""


def test_a_bad_toy_link_is_reported_and_the_tab_still_opens(page, server_url):
    page.goto(server_url + "?tab=toy&n=abc&S=2")
    note = page.locator("#toy-link-note")
    expect(note).to_contain_text("not used", timeout=20_000)
    expect(note).to_contain_text("n='abc' is not a number")
    expect(page.locator("#toy-status")).to_contain_text("5 of 5 features", timeout=20_000)  # the opening, as always
    expect(page.locator("#toy-n input[type=number]")).to_have_value("5")  # nothing silently replaced


def test_an_mnist_link_puts_that_digit_on_the_pad_and_a_drawing_of_ones_own_has_none(page, server_url):
    page.goto(server_url + "?tab=mnist&example=3")
    status = page.locator("#mnist-status")
    expect(status).to_contain_text("The network reads 3", timeout=40_000)  # the opening digit is a 2
    assert query_of(copied_link(page, "mnist")) == {"tab": "mnist", "example": "3"}
    # A stroke of the learner's own on the pad: no link can carry it, and the box says so.
    canvas = page.locator("#mnist-pad canvas").last
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.7, steps=8)
    page.mouse.up()
    page.wait_for_timeout(500)
    page.locator("#mnist-copy-link").click()
    expect(page.locator("#mnist-link textarea, #mnist-link input").first).to_have_value(
        re.compile("own drawing"), timeout=10_000
    )


def test_a_resnet_link_analyses_that_example_at_that_layer(page, server_url):
    page.goto(server_url + "?tab=resnet&model=mnist-resnet&layer=layer2.0.conv1&example=7")
    expect(page.locator("#resnet-status")).to_contain_text("The model's answer: 7", timeout=40_000)
    expect(page.locator("#resnet-layer input").first).to_have_value("layer2.0.conv1", timeout=10_000)
    assert query_of(copied_link(page, "resnet")) == {
        "tab": "resnet",
        "model": "mnist-resnet",
        "layer": "layer2.0.conv1",
        "example": "7",
    }


def test_a_language_model_link_runs_that_layer_on_that_text(page, server_url):
    text = "Rivers rise in spring."
    page.goto(server_url + f"?tab=lm&layer=12&text={text.replace(' ', '%20')}")
    expect(page.locator("#lm-layer input[type=number]")).to_have_value("12", timeout=30_000)
    expect(page.locator("#lm-status")).to_contain_text("layer 12", timeout=60_000)
    assert query_of(copied_link(page, "lm")) == {
        "tab": "lm",
        "model": lm_tab.default_model(),
        "layer": "12",
        "text": text,
        "view": lm_tab.VIEWS[0],
    }
    page.goto(server_url + "?tab=lm&layer=99")
    expect(page.locator("#lm-link-note")).to_contain_text("layer=99 is out of range", timeout=30_000)


def test_a_lesson_step_asks_first_then_shows_the_answer_beside_the_guess(page, server_url):
    page.goto(server_url + "?tab=lessons&lesson=01-toy-model&step=2")
    expect(page.locator("#lessons-heading")).to_contain_text("Step 2 of 4", timeout=20_000)
    result = page.locator("#lessons-result")
    page.locator("#lessons-run").click()  # no guess yet: nothing is revealed
    expect(result).to_contain_text("Make your guess first", timeout=10_000)
    page.locator("#lessons-guess-number input").fill("3")
    page.locator("#lessons-run").click()
    expect(result).to_contain_text("You guessed 3; the network gives 5", timeout=60_000)
    expect(page.locator("#lessons-figure img")).to_be_visible()
    page.locator("#lessons-next").click()
    expect(page.locator("#lessons-heading")).to_contain_text("Step 3 of 4", timeout=10_000)
    expect(page.locator("#lessons-guess-number input")).to_have_value("")  # a fresh guess for a fresh step
    expect(result).not_to_contain_text("You guessed")
    assert query_of(copied_link(page, "lessons")) == {"tab": "lessons", "lesson": "01-toy-model", "step": "3"}
    page.goto(server_url + "?tab=lessons&lesson=02-mnist&step=1")  # a choice question
    expect(page.locator("#lessons-heading")).to_contain_text("Step 1 of 3", timeout=20_000)
    page.get_by_label("about 64 of 128").check()
    page.locator("#lessons-run").click()
    expect(result).to_contain_text("the network gives about 110 of 128", timeout=60_000)
    expect(result).to_contain_text("Not this time")
