"""Placeholder tabs for the demos that later issues build."""
from __future__ import annotations

import gradio as gr

PLANNED = {
    "resnet": ("ResNet", "Pick any convolution layer of a real ResNet, see its feature maps, and compare each layer's effective rank with its channel count."),
    "lm": ("Language model", "Type text, see a language model's hidden activations, and pull features apart with sparse autoencoders."),
}


def render(key: str) -> None:
    title, what = PLANNED[key]
    gr.Markdown(f"### {title}: coming next\n\n{what}\n\nThis tab is not built yet; the **Toy model** and **Draw a digit** tabs are complete.")
