"""superpos: see superposition in real neural networks, live in the browser.

python app.py                      # http://127.0.0.1:7860
python app.py --host 0.0.0.0 --port 8080 --device cuda
python app.py --tab mnist          # one demo alone, for a course page that embeds just that
superpos --tab mnist               # the same, once installed (pip install .)
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
    import spaces  # noqa: F401 (on a ZeroGPU Space: before torch, so that it can lend CUDA to decorated calls)

if __name__ == "__main__":  # a server starting: a second process reads its first texts meanwhile (see the module)
    import sys

    from superpos_core.lm import early_reader

    early_reader.start_for_server(sys.argv[1:])

import gradio as gr
import torch

from superpos_core import serving
from superpos_core.devices import resolve_device

if __package__:  # installed (pip install .): this file is superpos.app and the tabs are superpos.demos
    from .demos import lessons, mnist, resnet, toy
    from .demos import lm as lm_tab
else:  # a checkout: python app.py, or import app from the repository's root
    from demos import lessons, mnist, resnet, toy
    from demos import lm as lm_tab

TABS = {**lessons.TABS, "lessons": "Lessons"}  # id -> title, in order: the experiments' tabs, then the lessons
MAX_FILE_SIZE = "25mb"  # enough for a phone photo of a digit; bigger uploads are refused
# ?tab=lm opens that tab (any case: ?tab=LM too). In the browser, because a tab chosen by the server sticks:
# later updates would snap the page back to it. Inside a <gradio-app> web component the page's address is the
# course page's, so the component's own src is read too. On a narrow screen (a phone) gradio shows only the
# chosen tab's button and lists the others, by title alone, under "More tabs": those are clicked by title.
OPEN_TAB_FROM_ADDRESS = (  # noqa: UP031 (%: the JavaScript is full of braces that format() would read)
    "() => { const titles = %s; window.superposTabOpened = true;"
    " const host = document.querySelector('gradio-app[src]');"
    " const addresses = [window.location.href, host ? new URL(host.getAttribute('src'), window.location.href).href : null];"
    " for (const address of addresses) { if (!address) continue;"
    "  const wanted = (new URL(address).searchParams.get('tab') || '').trim().toLowerCase();"
    "  if (!(wanted in titles)) continue;"
    '  const button = document.querySelector(`button[role=tab][data-tab-id="${wanted}"]`)'
    "   || [...document.querySelectorAll('.overflow-dropdown button')].find((b) => b.textContent.trim() === titles[wanted]);"
    "  button?.click(); return; } }"
) % json.dumps(TABS)
# Switching tabs writes ?tab=NAME into the address (other parameters kept), so that a teacher can copy a link to
# the tab. Not inside a <gradio-app> web component: there the address is the course page's own. Not before the
# address has opened its tab either: gradio selects the first tab as the page is built.
SHOW_TAB_IN_ADDRESS = (
    "() => { if (!window.superposTabOpened || document.querySelector('gradio-app[src]')) return;"
    " const address = new URL(window.location.href); address.searchParams.set('tab', %s);"
    " window.history.replaceState(window.history.state, '', address); }"
)
CSS = ".figure-note { font-size: 0.9em; opacity: 0.85; } .figure-title p { margin-bottom: -8px; }"
# How the app is launched, from the command line or a notebook (superpos.launch).
LAUNCH_OPTIONS = dict(css=CSS, max_file_size=MAX_FILE_SIZE, footer_links=["api", "gradio"])
INTRO = (
    "# superpos: superposition, live\n"
    "Neural networks store more features than they have neurons by letting features share neurons. "
    "Poke real, trained networks and watch it happen. A companion to the course *Unravelling Superposition*."
)


def unknown_tab_warning(request: gr.Request) -> None:
    """Say so when an address asks for a tab that does not exist (the page stays on the first tab)."""
    wanted = request.query_params.get("tab") if request is not None else None
    if wanted and wanted.strip().lower() not in TABS:
        gr.Warning(f"There is no tab {wanted[:40]!r} here. Links can open ?tab={', ?tab='.join(TABS)}.")


def build_app(device: str = "auto", tab: str | None = None, allow_any_model: bool = False) -> gr.Blocks:
    """Compose the tabs (or, with ``tab``, that one demo alone). Models load on first use, so this is quick."""
    if tab is not None and tab not in TABS:
        raise ValueError(f"unknown tab {tab!r}; choose one of {', '.join(TABS)}")
    torch_device = resolve_device(device)
    shown = [tab] if tab else list(TABS)
    title = "superpos: superposition, live" + (f" ({TABS[tab]})" if tab else "")
    # The tabs' warm-ups (opening views, the default language model) run once all are composed, one at a time.
    with serving.warm_ups_in_order(), gr.Blocks(title=title) as blocks:
        gr.Markdown(INTRO)
        rendered = {}
        render = {
            "toy": lambda: toy.render(blocks, torch_device),
            "mnist": lambda: mnist.render(blocks, torch_device, can_send="resnet" in shown),
            "resnet": lambda: resnet.render(blocks, torch_device),
            "lm": lambda: lm_tab.render(blocks, torch_device, allow_any_model=allow_any_model),
            "lessons": lambda: lessons.render(blocks, torch_device),
        }
        if tab:
            rendered[tab] = render[tab]()
        else:
            with gr.Tabs():
                for key in shown:
                    with gr.Tab(TABS[key], id=key, elem_id=f"tab-{key}") as page_tab:
                        rendered[key] = render[key]()
                    page_tab.select(None, js=SHOW_TAB_IN_ADDRESS % json.dumps(key))
            blocks.load(
                unknown_tab_warning,
                js=OPEN_TAB_FROM_ADDRESS,
                api_visibility="private",
                **serving.queue("page-load"),
            )
        if "mnist" in rendered and "resnet" in rendered:
            resnet.take_drawings_from(rendered["mnist"], rendered["resnet"])  # "Send this drawing to the ResNet tab"
    blocks.queue(max_size=serving.QUEUE_MAX_SIZE, default_concurrency_limit=serving.DEFAULT_LIMIT)
    return blocks


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description="superpos: superposition in real networks, live")
    # A Hugging Face Space (and any host that sets them) tells the app where to serve through these variables.
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to serve on (0.0.0.0 for all)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="PyTorch threads per request (1 suits many small requests; raise it for one heavy user)",
    )
    parser.add_argument("--tab", choices=list(TABS), help="serve one demo alone (for a page that embeds just that one)")
    parser.add_argument(
        "--allow-any-model",
        action="store_true",
        help="let users type any Hugging Face model id in the language-model tab (it is downloaded and kept in memory: for your own machine, not a public server)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    serving.limit_allocator_arenas()  # memory freed by one request's thread is reused by the next (load test: RSS growth)
    try:
        blocks = build_app(args.device, tab=args.tab, allow_any_model=args.allow_any_model)
    except ValueError as error:
        parser.error(str(error))
    try:
        blocks.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            **LAUNCH_OPTIONS,
        )
    except OSError as error:  # most often: the port is taken
        parser.exit(1, f"superpos could not start: {error}\n")


if __name__ == "__main__":
    main()
