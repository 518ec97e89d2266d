"""The ResNet tab as a learner meets it, in a real browser: the opening example, model switches, bad files."""

from __future__ import annotations

import re
import time

import pytest
from PIL import Image
from playwright.sync_api import expect

from superpos_core import resnets
from tests import helpers

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")

PANELS = ["#resnet-status", "#resnet-top5", "#resnet-grid", "#resnet-overlay", "#resnet-card", "#resnet-ranks"]


@pytest.fixture(scope="module")
def page(server_url, browser):
    page = browser.new_page()
    page.goto(server_url)
    page.get_by_role("tab", name="ResNet").click()
    yield page
    page.close()


@pytest.fixture
def imagenet_here(tmp_path, monkeypatch):
    """On the server (this process): ResNet-18 with random weights in an empty torchvision cache; no network, so no ResNet-50."""
    return helpers.imagenet_offline_with_random_resnet18(tmp_path, monkeypatch)


def choose(page, control: str, option: str):
    page.locator(f"{control} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def close_toasts(page):
    for button in page.locator(".toast-close").all():
        if button.is_visible():
            button.click()


def no_error_badges(page):
    for panel in PANELS:
        expect(page.locator(f"{panel} .error")).to_have_count(0)


def test_the_tab_opens_with_an_example_analysed(page):
    # Nothing clicked: the first example digit is in the picture box and every panel is drawn.
    expect(page.locator("#resnet-status")).to_contain_text("The model's answer: 0", timeout=15_000)
    for panel in ("#resnet-image", "#resnet-grid", "#resnet-overlay", "#resnet-ranks"):
        expect(page.locator(f"{panel} img").first).to_be_visible()
    expect(page.locator("#resnet-top5")).to_contain_text("0")
    expect(page.locator("#resnet-card")).to_contain_text("16 channels")
    expect(page.locator("#resnet-examples button.thumbnail-item")).to_have_count(10)


def test_switching_models_with_a_picture_loaded_and_back(page, imagenet_here):
    examples = page.locator("#resnet-examples button.thumbnail-item")
    examples.nth(7).click()  # a real MNIST 7
    status = page.locator("#resnet-status")
    expect(status).to_contain_text("answer: 7", timeout=15_000)
    grid = page.locator("#resnet-grid img")
    digit_maps = grid.get_attribute("src")
    choose(page, "#resnet-model", "ResNet-18, ImageNet (torchvision)")
    # Every panel is ResNet-18's: its answer (an ImageNet class, no digit), its maps, its card, its examples.
    expect(page.locator("#resnet-card")).to_contain_text("Conv2d(3, 64", timeout=60_000)
    expect(status).not_to_contain_text("answer: 7")
    expect(status).to_contain_text(re.compile(r"The model's answer: [^0-9]"))
    expect(page.locator("#resnet-top5")).not_to_contain_text(re.compile(r"^\s*[0-9]\s*$", re.M))
    expect(grid).to_be_visible()
    expect(grid).not_to_have_attribute("src", digit_maps)
    expect(page.locator("#resnet-model-status")).to_contain_text("ResNet-18")
    expect(examples).to_have_count(4)
    # And back, the picture still loaded: the digit model's answer and feature maps are drawn again.
    choose(page, "#resnet-model", "Small ResNet-18 trained on MNIST (bundled)")
    expect(status).to_contain_text("answer: 7", timeout=30_000)
    expect(page.locator("#resnet-card")).to_contain_text("Conv2d(1, 16")
    expect(grid).to_be_visible()
    expect(page.locator("#resnet-top5")).to_contain_text("7")
    expect(examples).to_have_count(10)
    no_error_badges(page)


def test_an_unavailable_model_says_so_whole_and_is_not_retried_on_a_layer_switch(page, imagenet_here):
    choose(page, "#resnet-model", "ResNet-50, ImageNet (torchvision)")
    status = page.locator("#resnet-status")
    expect(status).to_contain_text("Unavailable: ResNet-50", timeout=30_000)
    expect(status).to_contain_text("resnet50-11ad3fa6.pth")
    expect(status).to_contain_text("retry now.")  # the whole message, to its last words
    expect(status).not_to_contain_text("downloads its ImageNet weights once")
    for panel in ("#resnet-grid", "#resnet-overlay", "#resnet-ranks"):
        expect(page.locator(f"{panel} img")).to_have_count(0)  # nothing left from the digit model
    expect(page.locator("#resnet-top5")).not_to_contain_text("7")
    expect(page.locator("#resnet-retry")).to_be_visible()
    assert len(imagenet_here) == 1
    started = time.monotonic()
    choose(page, "#resnet-layer", "layer1.0.conv2")
    expect(page.locator("#resnet-card")).to_contain_text("Unavailable: ResNet-50", timeout=3_000)
    assert time.monotonic() - started < 3 and len(imagenet_here) == 1  # no second download for a layer switch
    page.locator("#resnet-retry").click()  # the learner asks: tried again
    expect(status).to_contain_text("Unavailable: ResNet-50", timeout=30_000)
    deadline = time.monotonic() + 10
    while len(imagenet_here) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(imagenet_here) == 2
    choose(page, "#resnet-model", "Small ResNet-18 trained on MNIST (bundled)")
    expect(status).to_contain_text("answer: 7", timeout=30_000)
    close_toasts(page)


def upload(page, path):
    page.locator("#resnet-image button[aria-label='Remove Image']").click()
    page.locator("#resnet-image input[type=file]").set_input_files(str(path))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("bomb.png", "too large to read"),
        ("list.png", "That file is not a picture"),
        ("one.png", "too small"),
        ("clear.png", "fully transparent"),
    ],
)
def test_a_bad_file_gets_a_message_beside_the_picture(page, tmp_path, name, expected):
    path = tmp_path / name
    makers = {
        "bomb.png": lambda: helpers.decompression_bomb_png(path),
        "list.png": lambda: helpers.text_named_png(path),
        "one.png": lambda: Image.new("RGB", (1, 1), "black").save(path),
        "clear.png": lambda: Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(path),
    }
    makers[name]()
    upload(page, path)
    status = page.locator("#resnet-status")
    expect(status).to_contain_text(expected, timeout=15_000)
    expect(status).not_to_contain_text("canvas")
    expect(status).not_to_contain_text("brush")
    expect(page.locator("#resnet-grid img")).to_have_count(0)  # the last picture's maps are gone
    no_error_badges(page)
    close_toasts(page)


def test_a_photo_for_the_digit_model_gets_a_caution(page):
    upload(page, "assets/photos/cat.jpg")
    status = page.locator("#resnet-status")
    expect(status).to_contain_text("only knows the ten digits", timeout=15_000)
    expect(status).to_contain_text("The model's answer")
    expect(page.locator("#resnet-grid img")).to_be_visible()


def test_the_layer_list_is_in_the_tables_order(page):
    page.locator("#resnet-layer input").click()
    options = [
        text.replace("✓", "").strip() for text in page.get_by_role("option").all_inner_texts()
    ]  # the chosen one is ticked
    page.keyboard.press("Escape")
    names = resnets.layer_names("mnist-resnet")
    assert options == names
    # The table's cells, in the order shown: its layer column reads the same.
    cells = [text.strip() for text in page.locator("#resnet-table [role=gridcell]").all_text_contents()]
    shown = [text for text in cells if text in names]
    assert shown == names
