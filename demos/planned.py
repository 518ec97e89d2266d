"""Placeholder tabs for the demos that later issues build."""
from __future__ import annotations

import gradio as gr

PLANNED = {
    "lm": ("Language model", "Type text, see a language model's hidden activations, and pull features apart with sparse autoencoders."),
}


def render(key: str) -> None:
    title, what = PLANNED[key]
    gr.Markdown(f"### {title}: coming next\n\n{what}\n\nThis tab is not built yet; the **Toy model**, **Draw a digit** and **ResNet** tabs are complete.")
