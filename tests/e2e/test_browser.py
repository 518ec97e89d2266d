"""A learner's first minute, in a real browser (Debian chromium driven by Playwright)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def page(server_url, browser):
    page = browser.new_page()
    page.goto(server_url)
    yield page
    page.close()


def ready(page):
    """Wait until the tab has loaded: the example digits are in, the canvas is drawable."""
    expect(page.locator("#mnist-examples button.thumbnail-item").first).to_be_visible(timeout=60_000)
    expect(page.locator("#mnist-sketchpad canvas").first).to_be_visible()
    page.wait_for_timeout(1500)  # the canvas library finishes setting up after it is shown


def draw(page, points):
    """Draw one stroke through ``points`` given as fractions of the canvas."""
    brush = page.locator("#mnist-sketchpad button[aria-label='Brush']")
    if brush.count():
        brush.first.click()
    canvas = page.locator("#mnist-sketchpad canvas").first
    box = canvas.bounding_box()
    side = min(box["width"], box["height"])  # the canvas is square, centred in its frame
    x0, y0 = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
    page.mouse.move(x0 + points[0][0] * side, y0 + points[0][1] * side)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x0 + x * side, y0 + y * side, steps=8)
    page.mouse.up()


def test_the_toy_model_opens_the_app_with_a_pentagon(page):
    expect(page.locator("#toy-status")).to_contain_text("5 of 5 features", timeout=60_000)
    page.get_by_role("tab", name="Draw a digit (MNIST)").click()


def test_draw_a_one_and_see_the_prediction(page):
    status = page.locator("#mnist-status")
    expect(status).to_contain_text("Draw a digit", timeout=30_000)
    ready(page)
    draw(page, [(0.5, 0.15), (0.5, 0.85)])  # a vertical stroke: a "1"
    expect(status).to_contain_text("The network reads 1", timeout=30_000)
    expect(page.locator("#mnist-label")).to_contain_text("1")
    expect(page.locator("#mnist-saliency img")).to_be_visible()


def test_clearing_the_canvas_asks_for_a_digit(page):
    page.locator("#mnist-sketchpad button[aria-label='Clear canvas']").first.click()
    expect(page.locator("#mnist-status")).to_contain_text("Draw a digit", timeout=30_000)


def test_a_dot_gets_a_clear_message(page):
    draw(page, [(0.5, 0.5), (0.51, 0.5)])
    expect(page.locator("#mnist-status")).to_contain_text("only a dot", timeout=30_000)
    page.locator("#mnist-sketchpad button[aria-label='Clear canvas']").first.click()
    expect(page.locator("#mnist-status")).to_contain_text("Draw a digit", timeout=30_000)


def test_clicking_a_real_digit_analyses_it(page):
    # The gallery holds the test digits 0..9 in order; the fourth is a 3.
    ready(page)
    page.locator("#mnist-examples button.thumbnail-item").nth(3).click()
    expect(page.locator("#mnist-status")).to_contain_text(re.compile(r"The network reads 3"), timeout=30_000)


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
    page.locator("#mnist-sketchpad button[aria-label='Clear canvas']").first.click()
    draw(page, [(0.5, 0.15), (0.5, 0.85)])
    expect(page.locator("#mnist-status")).to_contain_text("The network reads 1", timeout=30_000)
    page.locator("#mnist-send").click()
    expect(page.locator("#resnet-status")).to_contain_text("answer: 1", timeout=60_000)


def test_language_model_tab_shows_the_token_heatmap(page):
    tab = page.get_by_role("tab", name="Language model")
    tab.click()
    text = page.locator("#lm-text textarea")
    expect(text).to_be_visible(timeout=30_000)  # the tab has really opened
    text.fill("It was the best of times, it was the worst of times.")
    page.get_by_role("button", name="Analyse the text").click()
    # The offline SmolLM2 loads once per process (about 20 s here) before the first analysis.
    expect(page.locator("#lm-next")).to_contain_text("%", timeout=120_000)
    expect(tab).to_have_attribute("aria-selected", "true")
    # Images load lazily: bring the figure's frame on screen, then its picture gets a size.
    page.locator("#lm-heatmap").scroll_into_view_if_needed()
    expect(page.locator("#lm-heatmap img")).to_be_visible(timeout=30_000)
