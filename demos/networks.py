"""The network each tab uses, as HTML for its "The network" accordion (``common.network_view``).

The science is ``superpos_core.network``; here each tab's model is found, given an example input of
its own kind, and its captured layers named. A model is never loaded for this: the MNIST net is the
tab's own, the ResNets are described from their architecture (the same shapes and parameter counts as
the trained weights), and a language model is described once the tab has loaded it.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from superpos_core import lm, mnist, network, resnets
from superpos_core.serving import Kept


def mnist_html(model: nn.Module) -> str:
    """The MNIST tab's SimpleNet; its three Linear layers and two ReLUs, which the tab reads, marked."""
    rows = network.describe(
        model, torch.zeros(1, 784, device=next(model.parameters()).device), captured=mnist.LAYERS + mnist.HIDDEN
    )
    return network.as_html(rows, printed=repr(model))


@functools.cache
def _resnet_rows(key: str) -> tuple[list[network.ModuleRow], str]:
    model = resnets.build(key).eval()  # the architecture only: no weights are loaded (or downloaded) for this
    side = 28 if resnets.CATALOGUE[key].input_kind == "digit" else 224
    example = torch.zeros(1, 1 if side == 28 else 3, side, side)  # (B, C, H, W), as the tab feeds the model
    rows = network.describe(model, example, captured=resnets.layer_names(key))
    return rows, repr(model)


def resnet_html(key: str, layer: str | None = None) -> str:
    """A catalogue ResNet, every conv layer marked as captured (one forward captures them all) and ``layer`` as shown."""
    if key not in resnets.CATALOGUE:
        return f"<p>Unknown model {key!r}.</p>"
    rows, printed = _resnet_rows(key)
    return network.as_html(rows, highlight=layer, printed=printed) + (
        "<p>The shapes are for one picture (batch, channels, height, width). The tab captures every <code>Conv2d</code> in one forward pass.</p>"
    )


# A loaded model's rows, its print-out and the modules it marks: described once per (model, device).
_lm_rows: Kept[tuple[list[network.ModuleRow], str, list[str]]] = Kept()


def _describe_lm(loaded: lm.LoadedLM) -> tuple[list[network.ModuleRow], str, list[str]]:
    ids = loaded.tokenizer("Hello world", return_tensors="pt")["input_ids"].to(loaded.device)  # (1, T)
    captured = _residual_stream_modules(loaded.model, loaded.n_layers)
    rows = network.describe(loaded.model, {"input_ids": ids}, captured=captured, use_cache=False)
    return rows, repr(loaded.model), captured


def _residual_stream_modules(model: nn.Module, n_layers: int) -> list[str]:
    """The token embedding and the transformer blocks: the modules whose outputs the tab reads as hidden states."""
    names = {id(module): name for name, module in model.named_modules()}
    embedding = names.get(id(model.get_input_embeddings())) if hasattr(model, "get_input_embeddings") else None
    blocks = next(
        (
            name
            for name, module in model.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) == n_layers - 1
        ),
        None,
    )
    found = [embedding] if embedding else []
    if blocks is not None:
        found += [f"{blocks}.{i}" for i in range(n_layers - 1)]
    return found


def lm_html(key: str, layer=None, device: torch.device = torch.device("cpu")) -> str:
    """A language model the tab has loaded: every module, the embedding and blocks marked, the chosen layer shown.

    Not loaded yet: says so, and the view fills in by itself once an analysis has loaded it.
    """
    loaded = lm.loaded_now(key, device)
    if loaded is None:
        return (
            f"<p>The network is described here once <b>{key}</b> is loaded: press <b>Analyse the text</b> "
            "(the first time a model loads takes a few seconds, up to about 30 s for SmolLM2).</p>"
        )
    rows, printed, captured = _lm_rows.get_or_make((loaded.name, str(loaded.device)), lambda: _describe_lm(loaded))
    try:
        chosen = int(layer)
    except (TypeError, ValueError):
        chosen = None
    highlight = captured[chosen] if chosen is not None and 0 <= chosen < len(captured) else None
    return network.as_html(rows, highlight=highlight, printed=printed) + (
        "<p>Shapes for the example “Hello world” (batch, tokens, width). Layer 0 is the embeddings; layer k is the residual stream "
        "after block k − 1 (the last one after the final norm, as transformers reports it).</p>"
    )
