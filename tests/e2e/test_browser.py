"""A learner's first minute, in a real browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from demos import lm as lm_tab
from superpos_core import lm

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")


@pytest.fixture(scope="module")
def page(server_url, browser):
    page = browser.new_page()
    page.goto(server_url)
    yield page
    page.close()


PAD = "#mnist-pad"
PANELS = ("#mnist-saliency", "#mnist-activations", "#mnist-polysemanticity", "#mnist-histograms")
ONE = [(0.5, 0.15), (0.5, 0.85)]  # a vertical stroke
FOUR = [[(0.35, 0.15), (0.3, 0.55), (0.75, 0.55)], [(0.65, 0.2), (0.65, 0.85)]]  # two strokes


def ready(page):
    """Wait until the tab has opened: the example digits are in, the pad is on screen."""
    expect(page.locator("#mnist-examples button.thumbnail-item").first).to_be_visible(timeout=60_000)
    expect(page.locator(f"{PAD} canvas")).to_be_visible()


def draw(page, points):
    """Draw one stroke through ``points`` given as fractions of the canvas, as a person does: no tool to choose first."""
    box = page.locator(f"{PAD} canvas").bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
    page.mouse.up()


def pad_button(page, name):
    return page.locator(f"{PAD} button[aria-label='{name}']")


def pictures(page) -> list:
    """The four live panels' pictures (their data URLs), None where a panel is empty."""
    return [
        page.locator(f"{panel} img").get_attribute("src") if page.locator(f"{panel} img").count() else None
        for panel in PANELS
    ]


def expect_new_pictures(page, before):
    """Every live panel shows a picture, each different from ``before``'s."""
    for panel, old in zip(PANELS, before):
        picture = page.locator(f"{panel} img")
        expect(picture).to_have_attribute("src", re.compile(r"^data:image/png;base64,"), timeout=30_000)
        if old is not None:
            expect(picture).not_to_have_attribute("src", old, timeout=30_000)


def expect_empty_panels(page):
    for panel in PANELS:
        expect(page.locator(f"{panel} img")).to_have_count(0, timeout=30_000)


def test_the_toy_model_opens_the_app_with_a_pentagon(page):
    expect(page.locator("#toy-status")).to_contain_text("5 of 5 features", timeout=60_000)
    page.get_by_role("tab", name="Draw a digit (MNIST)").click()


def test_the_tab_opens_with_a_real_digit_read_in_every_panel(page):
    ready(page)
    expect(page.locator("#mnist-status")).to_contain_text(
        "On the pad: a real MNIST test digit, a 2. The network reads 2", timeout=60_000
    )
    expect(page.locator("#mnist-label")).to_contain_text("2")
    expect_new_pictures(page, [None] * 4)  # no empty boxes on first view


def test_draw_a_one_and_see_the_prediction(page):
    before = pictures(page)
    draw(page, ONE)  # the first stroke replaces the opening digit
    expect(page.locator("#mnist-status")).to_have_text(
        re.compile(r"^\s*The network reads 1 "), timeout=30_000
    )  # the opening line is gone
    expect(page.locator("#mnist-label")).to_contain_text("1")
    expect_new_pictures(page, before)
    expect(page.locator("#mnist-saliency img")).to_be_visible()


def test_draw_clear_and_draw_again_without_choosing_a_tool(page):
    pad_button(page, "Clear canvas").click()
    expect(page.locator("#mnist-status")).to_contain_text("Draw a digit", timeout=30_000)
    expect_empty_panels(page)
    for stroke in FOUR:
        draw(page, stroke)
    expect(page.locator("#mnist-status")).to_contain_text("The network reads 4", timeout=30_000)
    expect(page.locator("#mnist-label")).to_contain_text("4")
    expect_new_pictures(page, [None] * 4)


def test_undo_takes_back_the_last_stroke_and_drawing_goes_on(page):
    status = page.locator("#mnist-status")
    pad_button(page, "Clear canvas").click()
    expect_empty_panels(page)
    draw(page, FOUR[0])
    expect(status).to_contain_text("The network reads", timeout=30_000)
    expect_new_pictures(page, [None] * 4)
    first, first_status = pictures(page), status.inner_text()
    draw(page, FOUR[1])
    expect(status).to_contain_text("The network reads 4", timeout=30_000)
    expect_new_pictures(page, first)
    pad_button(page, "Undo").click()
    for panel, picture in zip(PANELS, first):  # the same drawing as after the first stroke, read the same
        expect(page.locator(f"{panel} img")).to_have_attribute("src", picture, timeout=30_000)
    expect(status).to_have_text(first_status)
    pad_button(page, "Undo").click()
    expect(status).to_contain_text("Draw a digit", timeout=30_000)
    expect_empty_panels(page)
    draw(page, ONE)
    expect(status).to_contain_text("The network reads 1", timeout=30_000)


def test_a_dot_gets_a_clear_message(page):
    pad_button(page, "Clear canvas").click()
    expect(page.locator("#mnist-status")).to_contain_text("Draw a digit", timeout=30_000)
    draw(page, [(0.5, 0.5), (0.51, 0.5)])
    expect(page.locator("#mnist-status")).to_contain_text("only a dot", timeout=30_000)
    expect_empty_panels(page)
    pad_button(page, "Clear canvas").click()
    expect(page.locator("#mnist-status")).to_contain_text("Draw a digit", timeout=30_000)


def test_clicking_a_real_digit_analyses_it_and_drawing_goes_on_over_it(page):
    # The gallery holds the test digits 0..9 in order; the fourth is a 3.
    status = page.locator("#mnist-status")
    page.locator("#mnist-examples button.thumbnail-item").nth(3).click()
    expect(status).to_contain_text(re.compile(r"The network reads 3"), timeout=30_000)
    expect_new_pictures(page, [None] * 4)
    example, label = pictures(page), page.locator("#mnist-label").inner_text()
    draw(page, [(0.25, 0.15), (0.25, 0.85)])  # a line down the left of the 3
    expect_new_pictures(page, example)
    expect(status).to_contain_text("The network reads")
    expect(page.locator("#mnist-label")).not_to_have_text(label)  # the answer's confidences moved
    pad_button(page, "Clear canvas").click()
    expect(status).to_contain_text("Draw a digit", timeout=30_000)
    draw(page, ONE)
    expect(status).to_contain_text("The network reads 1", timeout=30_000)


def test_uploads_that_are_no_pictures_get_a_message_not_error_badges(page, tmp_path):
    from PIL import Image

    from tests import helpers

    (tmp_path / "notes.png").write_text("a text file, whatever its name says")
    Image.new("1", (15000, 15000)).save(
        tmp_path / "bomb.png"
    )  # a decompression bomb: 225 million pixels in a few dozen kB
    shown = pictures(page)
    for name, message in [("notes.png", "could not be read"), ("bomb.png", "too large")]:
        with page.expect_file_chooser() as chooser:
            page.locator("#mnist-upload").click()
        chooser.value.set_files(tmp_path / name)
        expect(page.locator("#mnist-status")).to_contain_text(message, timeout=30_000)
        expect(page.get_by_text("Error", exact=True)).to_have_count(0)
        assert pictures(page) == shown  # the pad and its panels are left as they were
    sample = helpers.sample().test
    Image.fromarray(helpers.digit_on_paper(sample.images[7])).save(tmp_path / "digit.png")
    with page.expect_file_chooser() as chooser:
        page.locator("#mnist-upload").click()
    chooser.value.set_files(tmp_path / "digit.png")
    expect(page.locator("#mnist-status")).to_contain_text(f"The network reads {sample.labels[7]}", timeout=30_000)


def test_a_pasted_picture_goes_on_the_pad_and_is_read(page):
    """Ctrl+V of a screenshot: a raw MNIST digit (light on dark, wider than tall) is fitted onto the pad and read."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from tests import helpers

    sample = helpers.sample().test
    digit = np.kron(sample.images[3], np.ones((4, 4), np.uint8))  # 112 x 112, light ink on black, as MNIST stores it
    wide = np.pad(digit, ((0, 0), (40, 40)))  # a screenshot is seldom square
    png = io.BytesIO()
    Image.fromarray(wide).save(png, format="PNG")
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const clipboard = new DataTransfer();
            clipboard.items.add(new File([bytes], "screenshot.png", { type: "image/png" }));
            document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true }));
        }""",
        base64.b64encode(png.getvalue()).decode(),
    )
    expect(page.locator("#mnist-status")).to_contain_text(f"The network reads {sample.labels[3]}", timeout=30_000)


def test_an_empty_pad_is_not_sent_to_the_resnet_tab(page):
    pad_button(page, "Clear canvas").click()
    expect(page.locator("#mnist-status")).to_contain_text("Draw a digit", timeout=30_000)
    page.locator("#mnist-send").click()
    expect(page.get_by_text("Draw a digit first")).to_be_visible(timeout=30_000)
    page.wait_for_timeout(500)  # long enough for a tab switch to have happened
    expect(page.get_by_role("tab", name="Draw a digit (MNIST)")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="ResNet").click()
    expect(page.locator("#resnet-examples button.thumbnail-item").first).to_be_visible(timeout=60_000)
    expect(page.locator("#tab-resnet").get_by_text("Error", exact=True)).to_have_count(
        0
    )  # nothing there was marked as failed
    page.get_by_role("tab", name="Draw a digit (MNIST)").click()


def test_training_progress_moves_within_an_epoch(page):
    page.locator("input[aria-label='number input for Epochs']").fill("1")
    page.get_by_role("button", name="Train a fresh network").click()
    batch = re.compile(r"Epoch 1 of 1: batch ([\d,]+) of ([\d,]+)")
    # Watched every frame from the click on: two different batches shown means the bar moved within the epoch
    # (reading one value and then waiting for another would miss a fast epoch whose first value seen is its last).
    page.wait_for_function(
        """([pattern]) => {
            const m = document.body.innerText.match(new RegExp(pattern));
            window.batchesSeen = window.batchesSeen || new Set();
            if (m) window.batchesSeen.add(m[1]);
            return window.batchesSeen.size >= 2;
        }""",
        arg=[batch.pattern],
        timeout=60_000,
    )
    expect(page.get_by_text(re.compile(r"Done: 1 epoch"))).to_be_visible(timeout=120_000)


def test_resnet_layer_switch_changes_the_feature_maps(page):
    page.get_by_role("tab", name="ResNet").click()
    examples = page.locator("#resnet-examples button.thumbnail-item")
    expect(examples.first).to_be_visible(timeout=60_000)
    examples.nth(7).click()  # a real MNIST 7
    expect(page.locator("#resnet-status")).to_contain_text("answer: 7", timeout=60_000)
    grid = page.locator("#resnet-grid img")
    expect(grid).to_be_visible()
    before = grid.get_attribute("src")
    page.locator("#resnet-layer input").click()
    page.get_by_role("option", name="layer4.1.conv2").click()
    expect(page.locator("#resnet-card")).to_contain_text("128 channels", timeout=30_000)
    expect(grid).not_to_have_attribute("src", before, timeout=30_000)


def test_a_drawing_travels_to_the_resnet_tab(page):
    page.get_by_role("tab", name="Draw a digit (MNIST)").click()
    ready(page)
    pad_button(page, "Clear canvas").click()
    draw(page, ONE)
    expect(page.locator("#mnist-status")).to_contain_text("The network reads 1", timeout=30_000)
    page.locator("#mnist-send").click()
    expect(page.get_by_role("tab", name="ResNet")).to_have_attribute("aria-selected", "true", timeout=30_000)
    expect(page.locator("#resnet-status")).to_contain_text("answer: 1", timeout=60_000)


def test_language_model_tab_shows_the_token_heatmap(page):
    tab = page.get_by_role("tab", name="Language model")
    tab.click()
    text = page.locator("#lm-text textarea")
    expect(text).to_be_visible(timeout=30_000)  # the tab has really opened
    typed = "Cats and dogs share the garden."  # not the opening example, so the status must change
    text.fill(typed)
    page.get_by_role("button", name="Analyse the text").click()
    # The offline SmolLM2 loads once per process (the server is in this process: the same model) before the first analysis.
    tokens = len(lm.load(lm_tab.default_model()).tokenizer(typed, add_special_tokens=False).input_ids)
    expect(page.locator("#lm-status")).to_contain_text(f"{tokens} tokens at layer", timeout=120_000)
    expect(page.locator("#lm-next")).to_contain_text("%")
    expect(tab).to_have_attribute("aria-selected", "true")
    # Images load lazily: bring the figure's frame on screen, then its picture gets a size.
    page.locator("#lm-heatmap").scroll_into_view_if_needed()
    expect(page.locator("#lm-heatmap img")).to_be_visible(timeout=30_000)


def test_a_drawing_shows_its_sae_features(page):
    page.get_by_role("tab", name="Draw a digit (MNIST)").click()
    ready(page)
    pad_button(page, "Clear canvas").click()
    expect(page.locator("#mnist-sae-features img")).to_have_count(0, timeout=30_000)  # emptied with the pad
    draw(page, ONE)
    expect(page.locator("#mnist-status")).to_contain_text("The network reads 1", timeout=30_000)
    features = page.locator("#mnist-sae-features img")
    features.scroll_into_view_if_needed()
    expect(features).to_have_attribute("src", re.compile(r"^data:image/png;base64,"), timeout=30_000)
    expect(features).to_be_visible()
