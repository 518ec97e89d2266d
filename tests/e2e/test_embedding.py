"""The app as course pages use it: deep links, the example page that embeds it, themes and narrow pages."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embed.html"
PHONE = {"width": 390, "height": 844}  # an iPhone 12-14's viewport

# Relative luminance and contrast ratio as WCAG defines them, of an element's text against the first
# opaque background behind it.
CONTRAST = """(element) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  let node = element, back = null;
  while (node && !back) { const c = getComputedStyle(node).backgroundColor, parts = rgb(c); if (parts.length === 3 || parts[3] > 0.9) back = c; node = node.parentElement; }
  const [a, b] = [lum(rgb(getComputedStyle(element).color)), lum(rgb(back || 'rgb(255,255,255)'))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


def selected_tab(page):
    return page.locator("button[role=tab][aria-selected=true]")


@pytest.mark.parametrize(
    "tab, title, inside", [("lm", "Language model", "#lm-text textarea"), ("resnet", "ResNet", "#resnet-status")]
)
def test_a_deep_link_opens_its_tab(page, server_url, tab, title, inside):
    page.goto(f"{server_url}?tab={tab}")
    expect(selected_tab(page)).to_have_text(title, timeout=30_000)
    expect(page.locator(inside)).to_be_visible()


def test_an_unknown_tab_in_a_link_says_so_and_opens_the_first(page, server_url):
    page.goto(f"{server_url}?tab=cifar")
    expect(page.get_by_text("There is no tab 'cifar' here")).to_be_visible(timeout=30_000)
    expect(selected_tab(page)).to_have_text("Toy model")


@pytest.fixture
def phone(browser):
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    yield page
    page.close()


@pytest.mark.parametrize(
    "asked, tab, title, inside",
    [
        ("mnist", "mnist", "Draw a digit (MNIST)", "#mnist-status"),
        ("ResNet", "resnet", "ResNet", "#resnet-status"),
        ("LM", "lm", "Language model", "#lm-text textarea"),
    ],
)
def test_a_deep_link_opens_its_tab_on_a_phone(phone, server_url, asked, tab, title, inside):
    """At 390 px gradio lists most tabs under "More tabs"; a link still opens its tab, whatever the case of its name."""
    phone.goto(f"{server_url}?tab={asked}")
    expect(selected_tab(phone)).to_have_text(title, timeout=30_000)
    expect(phone.locator(inside)).to_be_visible()
    expect(phone).to_have_url(re.compile(rf"[?&]tab={tab}(&|$)"))  # the address names the tab as links do
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]


def test_switching_tabs_puts_the_tab_in_the_address(phone, server_url):
    phone.goto(f"{server_url}?__theme=light")
    expect(selected_tab(phone)).to_have_text("Toy model", timeout=30_000)
    expect(phone).to_have_url(re.compile(r"__theme=light$"))  # opening the first tab leaves the address alone
    phone.get_by_role("button", name="More tabs").click()
    phone.locator(".overflow-dropdown button", has_text="ResNet").click()
    expect(selected_tab(phone)).to_have_text("ResNet")
    expect(phone).to_have_url(re.compile(r"\?__theme=light&tab=resnet$"), timeout=5_000)  # other parameters kept
    phone.get_by_role("tab", name="Toy model").click()
    expect(phone).to_have_url(re.compile(r"tab=toy$"), timeout=5_000)
    # The copied address opens that tab again.
    phone.get_by_role("button", name="More tabs").click()
    phone.locator(".overflow-dropdown button", has_text="Language model").click()
    expect(phone).to_have_url(re.compile(r"tab=lm$"), timeout=5_000)
    phone.goto(phone.url)
    expect(selected_tab(phone)).to_have_text("Language model", timeout=30_000)


@pytest.fixture
def course_site():
    """The examples folder served as a course site would serve it, from an origin other than the app's."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Handler, directory=str(EXAMPLE.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/embed.html"
    server.shutdown()
    server.server_close()


def test_the_example_course_page_embeds_the_app(page, course_site, server_url):
    page.goto(f"{course_site}?app={server_url}")  # the app is found from ?app=, not from a port written into the page
    expect(page.locator("#embed-status")).to_contain_text("come from the superpos app", timeout=30_000)
    # The web component, opened on the ResNet tab by the ?tab= in its src, and that link's experiment run.
    component = page.locator("gradio-app")
    expect(component.locator("button[role=tab][aria-selected=true]")).to_have_text("ResNet", timeout=60_000)
    expect(component.locator("#resnet-status")).to_contain_text("The model's answer: 7", timeout=60_000)
    component.locator(
        "#resnet-copy-link"
    ).click()  # the link of what is shown: the app's address, not the course page's
    expect(component.locator("#resnet-link textarea, #resnet-link input").first).to_have_value(
        f"{server_url.rstrip('/')}/?tab=resnet&model=mnist-resnet&layer=layer2.0.conv1&example=7", timeout=10_000
    )
    example = component.locator("#resnet-examples button.thumbnail-item").first
    example.scroll_into_view_if_needed()
    example.click()  # a real MNIST digit through the embedded app and back
    expect(component.locator("#resnet-status")).to_contain_text("answer", timeout=60_000)
    assert "tab=" not in page.url  # the embedded app leaves the course page's own address alone
    # The iframe fallback, opened on the MNIST tab with the gallery's digit 3 by its link, works as the full app does.
    page.locator("#demo-frame").scroll_into_view_if_needed()
    frame = page.frame_locator("#demo-frame")
    expect(frame.locator("button[role=tab][aria-selected=true]")).to_have_text("Draw a digit (MNIST)", timeout=60_000)
    expect(frame.locator("#mnist-status")).to_contain_text("The network reads 3", timeout=60_000)
    expect(frame.locator("#mnist-examples button.thumbnail-item").first).to_be_visible(timeout=60_000)


def test_the_example_page_opened_as_a_file_says_why_and_how_to_serve_it(page, server_url):
    page.goto(f"{EXAMPLE.as_uri()}?app={server_url}")
    status = page.locator("#embed-status")
    expect(status).to_contain_text("opened as a file", timeout=30_000)
    expect(status).to_contain_text("python -m http.server 8000 --directory examples")
    expect(status).to_contain_text(f"embed.html?app={server_url}")
    # The iframe needs no permission from the app: it works from a file too.
    page.locator("#demo-frame").scroll_into_view_if_needed()
    frame = page.frame_locator("#demo-frame")
    expect(frame.locator("button[role=tab][aria-selected=true]")).to_have_text("Draw a digit (MNIST)", timeout=60_000)


def test_the_example_page_says_when_no_app_answers(page, course_site):
    nowhere = f"http://127.0.0.1:{free_port()}/"
    page.goto(f"{course_site}?app={nowhere}<i>injected</i>")
    status = page.locator("#embed-status")
    expect(status).to_contain_text("No superpos app answered", timeout=30_000)
    expect(status).to_contain_text("python app.py")
    expect(status).to_contain_text("<i>injected</i>")  # the address is shown as text, never as HTML
    expect(status.locator("i")).to_have_count(0)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_readable_in_both_themes_at_700_pixels(browser, server_url, theme):
    page = browser.new_page()
    page.set_viewport_size({"width": 700, "height": 900})
    try:
        page.goto(f"{server_url}?__theme={theme}")
        expect(page.locator("#toy-json, .figure-note").first).to_be_attached(timeout=30_000)
        assert page.evaluate("() => document.body.classList.contains('dark')") == (theme == "dark")
        notes = page.locator(".figure-note p")
        expect(notes.first).to_be_visible()
        ratios = [notes.nth(i).evaluate(CONTRAST) for i in range(notes.count())]
        print(theme, "contrast of the notes:", [round(r, 1) for r in ratios])
        assert min(ratios) >= 4.5, ratios
        # Figures arrive as pictures: at 700 px none is squeezed below 3/4 of the size it was drawn at,
        # so the text inside stays as large as drawn.
        images = page.locator("img[src*='/file='], img[src*='gradio_api/file']")
        expect(images.first).to_be_visible(timeout=30_000)
        sizes = images.evaluate_all(
            "(imgs) => imgs.filter(i => i.naturalWidth > 200).map(i => [i.getBoundingClientRect().width, i.naturalWidth])"
        )
        assert sizes and all(shown >= 0.75 * natural for shown, natural in sizes), sizes
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 700  # nothing wider than the page
    finally:
        page.close()
