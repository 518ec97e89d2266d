"""superpos: see superposition in real neural networks, live in the browser.

    python app.py                      # http://127.0.0.1:7860
    python app.py --host 0.0.0.0 --port 8080 --device cuda
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import torch

from demos import lm as lm_tab, mnist, resnet, toy
from superpos_core.devices import resolve_device

MAX_FILE_SIZE = "25mb"  # enough for a phone photo of a digit; bigger uploads are refused
SHOW_RESNET_TAB = "() => { [...document.querySelectorAll('button[role=tab]')].find(b => b.textContent.trim() === 'ResNet')?.click(); }"
CSS = ".figure-note { font-size: 0.9em; opacity: 0.85; } .figure-title p { margin-bottom: -8px; }"
INTRO = (
    "# superpos: superposition, live\n"
    "Neural networks store more features than they have neurons by letting features share neurons. "
    "Poke real, trained networks and watch it happen. A companion to the course *Unravelling Superposition*."
)


def build_app(device: str = "auto") -> gr.Blocks:
    """Compose the tabs. Models load on first use, so this returns in well under a second."""
    torch_device = resolve_device(device)
    with gr.Blocks(title="superpos: superposition, live") as blocks:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Toy model", id="toy"):
                toy.render(blocks)
            with gr.Tab("Draw a digit (MNIST)", id="mnist"):
                digits = mnist.render(blocks, torch_device)
            with gr.Tab("ResNet", id="resnet"):
                convs = resnet.render(blocks, torch_device)
            with gr.Tab("Language model", id="lm"):
                lm_tab.render(blocks, torch_device)
        # A drawing can travel from the MNIST tab to the ResNet tab. The tab is switched in the browser:
        # a server-side gr.Tabs(selected=...) sticks, and later updates would snap the page back to it.
        digits.send.click(resnet.receive_drawing, inputs=digits.sketch, outputs=[convs.image, convs.model, convs.layer], api_visibility="private")
        digits.send.click(None, js=SHOW_RESNET_TAB)
    blocks.queue(max_size=64, default_concurrency_limit=2)
    return blocks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="superpos: superposition in real networks, live")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per request (1 suits many small requests; raise it for one heavy user)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        blocks = build_app(args.device)
    except ValueError as error:
        parser.error(str(error))
    try:
        blocks.launch(server_name=args.host, server_port=args.port, share=args.share, css=CSS, max_file_size=MAX_FILE_SIZE, footer_links=["api", "gradio"])
    except OSError as error:  # most often: the port is taken
        parser.exit(1, f"superpos could not start: {error}\n")


if __name__ == "__main__":
    main()
