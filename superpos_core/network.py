"""The network a tab uses, as the course shows it first: every module, its output shape and its parameters.

The course starts each chapter with ``print(model)``; that lists the modules but not what flows
between them. Here one forward pass of an example input, watched by hooks that are always removed,
adds each module's output shape, so the list reads as the network's graph from input to output.

    rows = describe(model, torch.zeros(1, 784), captured=["fc1", "fc2", "fc3"])
    print(as_text(rows))
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from superpos_core.capture import hooks_calling


@dataclass(frozen=True)
class ModuleRow:
    """One module of a network, in ``named_modules()`` order (a parent before its children)."""

    name: str  # as named_modules() names it: "" is the whole network, "layer1.0.conv1" a module inside
    kind: str  # the module's class, e.g. "Conv2d"
    depth: int  # 0 for the whole network, 1 for its children, ...
    output_shape: tuple[int, ...] | None  # of its output in the example's forward pass; None if it did not run
    calls: int  # how often it ran in that pass (a shared module can run several times)
    parameters: int  # parameters of the module and everything inside it
    own_parameters: int  # parameters held by this module itself (a Linear's weight and bias)
    captured: bool  # the tab reads this module's output (or weights)

    @property
    def label(self) -> str:
        return self.name or "(the whole network)"


def _shape_of(output) -> tuple[int, ...] | None:
    """The shape of a module's output: a tensor's, or the first tensor inside a tuple or a model output."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, dict):  # transformers' ModelOutput is an OrderedDict
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            shape = _shape_of(item)
            if shape is not None:
                return shape
    return None


def describe(model: nn.Module, example_input, captured: Iterable[str] = (), **forward_kwargs) -> list[ModuleRow]:
    """Every module of ``model`` with its output shape for ``example_input`` and its parameter counts.

    Args:
        model: any ``nn.Module``; it is run once, without gradients, and left as it was (its hooks
            are removed even if the forward fails; only this thread's forward is watched, so a model
            that a server shares between users can be described while others use it).
        example_input: a tensor, a tuple of positional inputs, or a dict of keyword inputs
            (``{"input_ids": ids}`` for a language model) that the model accepts.
        captured: module names the tab reads; they are marked. Unknown names raise ``KeyError``.
        forward_kwargs: passed to the forward (e.g. ``use_cache=False`` for a language model).
    """
    modules = dict(model.named_modules())
    captured = set(captured)
    missing = sorted(captured - set(modules))
    if missing:
        raise KeyError(f"no module named {missing!r} in {type(model).__name__}")
    shapes: dict[str, tuple[int, ...] | None] = {}
    calls: dict[str, int] = {}

    def on_output(name, output):
        calls[name] = calls.get(name, 0) + 1
        shapes.setdefault(name, _shape_of(output))  # the first call's shape: the order in which data meets it

    args = (
        ()
        if isinstance(example_input, dict)
        else example_input
        if isinstance(example_input, tuple)
        else (example_input,)
    )
    kwargs = {**(example_input if isinstance(example_input, dict) else {}), **forward_kwargs}
    with hooks_calling(model, list(modules), on_output), torch.inference_mode():
        result = model(*args, **kwargs)
    shapes.setdefault("", _shape_of(result))
    rows = []
    for name, module in modules.items():
        rows.append(
            ModuleRow(
                name=name,
                kind=type(module).__name__,
                depth=0 if not name else name.count(".") + 1,
                output_shape=shapes.get(name),
                calls=calls.get(name, 0),
                parameters=sum(p.numel() for p in module.parameters()),
                own_parameters=sum(p.numel() for p in module.parameters(recurse=False)),
                captured=name in captured,
            )
        )
    return rows


CELL = "padding:0.1em 0.6em"  # compact rows: a ResNet-50 has 150 modules


def _shape_text(row: ModuleRow) -> str:
    if row.output_shape is None:
        return "not run" if row.calls == 0 else "?"
    shape = "(" + ", ".join(map(str, row.output_shape)) + ")"
    return shape + (f" ×{row.calls}" if row.calls > 1 else "")


def total_parameters(rows: list[ModuleRow]) -> int:
    return rows[0].parameters if rows else 0


def as_text(rows: list[ModuleRow], highlight: str | None = None) -> str:
    """A fixed-width table, indented like ``print(model)``; captured modules are marked ◀."""
    lines = [("module", "type", "output shape", "parameters", "")]
    for row in rows:
        mark = "◀ shown" if row.name == highlight else "◀ captured" if row.captured else ""
        lines.append(("  " * row.depth + row.label, row.kind, _shape_text(row), f"{row.parameters:,}", mark))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}  {e}".rstrip()
        for a, b, c, d, e in lines
    )


def as_html(rows: list[ModuleRow], highlight: str | None = None, printed: str | None = None) -> str:
    """An HTML table of the modules (indented by depth, captured ones marked), and ``printed`` (``repr(model)``) below it.

    Everything from the model (names, ``repr``) is escaped: a model loaded from anywhere could name a
    module ``<script>``.
    """
    captured = sum(row.captured for row in rows)
    body = []
    for row in rows:
        mark = "◀ shown" if row.name == highlight else "◀ captured" if row.captured else ""
        style = ' style="font-weight:bold"' if mark else ""
        body.append(
            f'<tr class="{"captured" if row.captured else "module"}"{style}>'
            f'<td style="{CELL};padding-left:{0.4 + 1.2 * row.depth:.1f}em"><code>{html.escape(row.label)}</code></td>'
            f'<td style="{CELL}">{html.escape(row.kind)}</td><td style="{CELL}"><code>{html.escape(_shape_text(row))}</code></td>'
            f'<td style="{CELL};text-align:right">{row.parameters:,}</td><td style="{CELL}">{mark}</td></tr>'
        )
    summary = (
        f"<p>{len(rows) - 1} modules, {total_parameters(rows):,} parameters; output shapes for one example input"
        + (
            f"; <b>◀ captured</b>: the {captured} module{'s' * (captured != 1)} whose outputs this tab reads"
            if captured
            else ""
        )
        + ".</p>"
    )
    table = (
        '<div style="max-height:32em;overflow:auto"><table class="network-table" style="font-size:0.9em">'
        "<thead><tr>"
        + "".join(f'<th style="{CELL}">{title}</th>' for title in ("module", "type", "output shape", "parameters", ""))
        + "</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    listing = (
        f"<details><summary><code>print(model)</code></summary><pre>{html.escape(printed)}</pre></details>"
        if printed
        else ""
    )
    return summary + table + listing
