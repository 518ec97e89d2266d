"""The toy tab and each tab's network view, as a learner meets them in Chromium."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")


def steps_seen(page, of: str, enough: int, seconds: float = 30) -> set[str]:
    """The progress bars' "Step … of {of}" texts seen while a run goes on, until ``enough`` different ones (or time is up)."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(seen) < enough:
        seen |= {
            t
            for t in page.locator(".progress-level-inner").all_inner_texts()
            if t.startswith("Step ") and f"of {of}" in t
        }
        page.wait_for_timeout(100)
    return seen


def test_the_pentagon_is_there_when_the_page_opens(page, server_url):
    start = time.monotonic()
    page.goto(server_url)
    # Computed once per server as it started: no training while the first visitor waits.
    expect(page.locator("#toy-status")).to_contain_text("5 of 5 features", timeout=15_000)
    print(f"toy tab's opening model shown {time.monotonic() - start:.1f} s after the page was asked for")
    expect(page.locator("#tab-toy img").first).to_be_visible()


def test_the_s_box_and_the_slider_agree(page, server_url):
    page.goto(server_url)
    level = page.locator("#toy-level input[type=number]")
    box = page.locator("#toy-sparsity input")
    expect(box).to_have_value("0.99", timeout=15_000)
    expect(level).to_have_value("2")
    box.fill("0.9")
    box.press("Tab")
    expect(level).to_have_value("1", timeout=5_000)  # typing S moved the slider: 1 - 0.9 = 10⁻¹
    box.fill("0.999")
    box.press("Tab")
    expect(level).to_have_value("3", timeout=5_000)
    # And the other way: the slider dragged to its left end is dense data, S = 0.
    track = page.locator("#toy-level input[type=range]")
    bounds = track.bounding_box()
    page.mouse.click(bounds["x"] + 1, bounds["y"] + bounds["height"] / 2)
    expect(box).to_have_value("0", timeout=5_000)


def test_an_error_replaces_the_result_line(page, server_url):
    page.goto(server_url)
    status = page.locator("#toy-status")
    expect(status).to_contain_text("5 of 5 features", timeout=15_000)
    box = page.locator("#toy-sparsity input")
    box.fill("1.5")
    box.press("Tab")
    page.get_by_role("button", name="Train the toy model").click()
    expect(status).to_contain_text("Not trained", timeout=10_000)
    expect(status).to_contain_text("Sparsity")
    expect(status).not_to_contain_text("5 of 5 features")  # the old result's line is gone
    expect(page.locator("#tab-toy").get_by_text("Error", exact=True)).to_have_count(0)  # no red badge on the panels
    # Fixed, it trains again.
    box.fill("0.99")
    box.press("Tab")
    page.get_by_role("button", name="Train the toy model").click()
    expect(status).to_contain_text("5 of 5 features", timeout=20_000)


def test_progress_bars_move_while_training_and_sweeping(page, server_url):
    page.goto(server_url)
    expect(page.locator("#toy-status")).to_contain_text("5 of 5 features", timeout=15_000)
    steps = page.locator("#toy-steps input[type=number]")
    steps.fill("6000")
    steps.press("Enter")
    page.get_by_role("button", name="Train the toy model").click()
    assert len(steps_seen(page, "6,000", enough=2)) >= 2  # the bar moved: two different steps shown
    expect(page.locator(".progress-level-inner")).to_have_count(0, timeout=60_000)  # the run has ended
    expect(page.locator("#toy-status")).to_contain_text("features per dimension")
    steps.fill("1000")
    steps.press("Enter")
    page.get_by_role("button", name="Sweep 20 sparsities").click()
    assert len(steps_seen(page, "1,000", enough=2)) >= 2


def open_network(page, tab: str):
    view = page.locator(f"#{tab}-network")
    view.scroll_into_view_if_needed()
    view.get_by_text("The network this tab uses").click()
    return view


def test_the_toy_network_view_follows_the_controls(page, server_url):
    page.goto(server_url)
    expect(page.locator("#toy-status")).to_contain_text("features", timeout=15_000)
    view = open_network(page, "toy")
    expect(view.locator("tr", has_text="◀ shown")).to_contain_text("hidden", timeout=10_000)
    expect(view.locator("tr", has_text="◀ shown")).to_contain_text("(1, 2)")
    m = page.locator("#toy-m input[type=number]")
    m.fill("3")
    m.press("Enter")
    expect(view.locator("tr", has_text="◀ shown")).to_contain_text("(1, 3)", timeout=10_000)
    view.locator("summary", has_text="print(model)").click()
    expect(view.locator("pre")).to_contain_text("Linear(in_features=5, out_features=3, bias=False)")


@pytest.mark.parametrize("tab, model_row, captured", [("mnist", "SimpleNet", 5), ("resnet", "MnistResNet", 20)])
def test_each_tab_shows_its_network(page, server_url, tab, model_row, captured):
    page.goto(f"{server_url}?tab={tab}")
    view = open_network(page, tab)
    expect(view.locator("tbody tr").first).to_contain_text(model_row, timeout=15_000)
    expect(view.locator("tr.captured")).to_have_count(captured)


def test_the_resnet_view_marks_the_chosen_layer(page, server_url):
    page.goto(f"{server_url}?tab=resnet")
    view = open_network(page, "resnet")
    expect(view.locator("tr.captured").first).to_be_visible(timeout=15_000)
    page.locator("#resnet-layer input").click()
    page.get_by_role("option", name="layer4.1.conv2").click()
    expect(view.locator("tr", has_text="◀ shown")).to_contain_text(
        re.compile(r"layer4\.1\.conv2.*\(1, 128, 4, 4\)"), timeout=10_000
    )


def test_the_language_model_view_fills_in_once_the_model_is_loaded(page, server_url):
    page.goto(f"{server_url}?tab=lm")
    view = open_network(page, "lm")
    expect(view).to_contain_text(
        re.compile(r"Analyse the text|modules"), timeout=15_000
    )  # never a model load for the view
    page.get_by_role("button", name="Analyse the text").click()
    # The offline SmolLM2 loads once per process (about 20 s here) before the first analysis.
    expect(page.locator("#lm-status")).to_contain_text("effective rank", timeout=120_000)
    expect(view.locator("tr.captured").first).to_be_visible(timeout=15_000)  # filled by itself, without reopening
    expect(view.locator("tr", has_text="◀ shown")).to_have_count(1)


def test_an_sae_on_the_hidden_layer_finds_the_pentagon(page, server_url):
    page.goto(server_url)
    expect(page.locator("#toy-status")).to_contain_text("5 of 5 features", timeout=15_000)
    button = page.get_by_role("button", name="Train an SAE on the hidden layer")
    button.scroll_into_view_if_needed()
    button.click()
    status = page.locator("#toy-sae-status")
    expect(status).to_contain_text("Recovered 5 of 5 features", timeout=60_000)
    expect(status).to_contain_text("explained variance")
    expect(page.locator("#toy-sae-cosines img")).to_be_visible()
    expect(page.locator("#toy-sae-directions img")).to_be_visible()
