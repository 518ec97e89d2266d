"""The app as course pages use it: deep links, the example page that embeds it, themes and narrow pages."""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embed.html"
EXAMPLE_APP = "http://127.0.0.1:7860/"  # the address the example page embeds

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


@pytest.mark.parametrize("tab, title, inside", [("lm", "Language model", "#lm-text textarea"), ("resnet", "ResNet", "#resnet-status")])
def test_a_deep_link_opens_its_tab(page, server_url, tab, title, inside):
    page.goto(f"{server_url}?tab={tab}")
    expect(selected_tab(page)).to_have_text(title, timeout=30_000)
    expect(page.locator(inside)).to_be_visible()


def test_an_unknown_tab_in_a_link_says_so_and_opens_the_first(page, server_url):
    page.goto(f"{server_url}?tab=cifar")
    expect(page.get_by_text("There is no tab 'cifar' here")).to_be_visible(timeout=30_000)
    expect(selected_tab(page)).to_have_text("Toy model")


@pytest.fixture
def course_page(server_url):
    """The example course page, served from another origin, embedding the test's server instead of :7860."""
    html = EXAMPLE.read_text()
    assert EXAMPLE_APP in html
    folder = EXAMPLE.parent

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/embed.html":
                return super().do_GET()
            body = html.replace(EXAMPLE_APP, server_url).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/embed.html"
    server.shutdown()


def test_the_example_course_page_embeds_the_app(page, course_page):
    page.goto(course_page)
    # The web component, opened on the ResNet tab by the ?tab= in its src.
    component = page.locator("gradio-app")
    expect(component.locator("button[role=tab][aria-selected=true]")).to_have_text("ResNet", timeout=60_000)
    example = component.locator("#resnet-examples button.thumbnail-item").first
    example.scroll_into_view_if_needed()
    example.click()  # a real MNIST digit through the embedded app and back
    expect(component.locator("#resnet-status")).to_contain_text("answer", timeout=60_000)
    # The iframe fallback, opened on the MNIST tab, works as the full app does.
    page.locator("#demo-frame").scroll_into_view_if_needed()
    frame = page.frame_locator("#demo-frame")
    expect(frame.locator("button[role=tab][aria-selected=true]")).to_have_text("Draw a digit (MNIST)", timeout=60_000)
    expect(frame.locator("#mnist-examples button.thumbnail-item").first).to_be_visible(timeout=60_000)


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
        sizes = images.evaluate_all("(imgs) => imgs.filter(i => i.naturalWidth > 200).map(i => [i.getBoundingClientRect().width, i.naturalWidth])")
        assert sizes and all(shown >= 0.75 * natural for shown, natural in sizes), sizes
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 700  # nothing wider than the page
    finally:
        page.close()
