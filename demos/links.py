"""Every experiment a link: a tab's controls set from the page's address, and the address of what is on screen.

``?tab=toy&n=6&m=2&S=0.99`` opens the toy tab with those controls and runs that experiment; each tab's
**Copy link** button gives the address of the experiment shown. A tab says which names it reads (``Param``)
and how to check them together (``TabLink.check``); ``wire`` adds the two events. The address is read in the
browser, so that a link works inside a ``<gradio-app>`` web component (whose ``src`` holds it) and an iframe
(whose own address does) as well as on the app's own page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import gradio as gr

MAX_TEXT = 2000  # characters of text a link may carry: an address, not a document


class LinkError(ValueError):
    """An address whose values this tab cannot use; the message says which and why, for the learner."""


@dataclass(frozen=True)
class Param:
    """One name in the address and the control it sets."""

    name: str  # as the address spells it
    control: str  # the tab's ``Panels`` name of the control it sets
    kind: type = float  # int, float or str
    aliases: tuple[str, ...] = ()  # other spellings read too (the API's input name, where it differs)
    about: str = ""  # what it is, for the messages

    def parse(self, text: str):
        """The address's text as a value of ``kind``; raises ``LinkError`` naming the parameter."""
        if self.kind is str:
            if len(text) > MAX_TEXT:
                raise LinkError(f"{self.name} is {len(text):,} characters long; a link holds at most {MAX_TEXT:,}.")
            return text
        try:
            value = float(text)
        except ValueError:
            raise LinkError(f"{self.name}={_quoted(text)} is not a number.") from None
        if not math.isfinite(value):
            raise LinkError(f"{self.name}={_quoted(text)} is not a finite number.")
        if self.kind is int:
            if value != int(value):
                raise LinkError(f"{self.name}={_quoted(text)} is not a whole number.")
            return int(value)
        return value


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


@dataclass(frozen=True)
class TabLink:
    """The link parameters of one tab, and the check of their values together.

    Args:
        tab: the tab's id, as ``?tab=`` names it.
        params: the names it reads, in the order a link writes them.
        check: given ``{control: value}`` for the parameters present, raises ``ValueError`` (any kind, with a
            message for the learner) when they cannot be used as they are. Never changes a value: a value the
            tab would lower or cap is refused, so that what runs is what the link says.
    """

    tab: str
    params: tuple[Param, ...]
    check: Callable[[dict], None] = lambda values: None

    def _by_name(self) -> dict[str, Param]:
        return {spelling: p for p in self.params for spelling in (p.name, *p.aliases)}

    def read(self, query: str) -> dict | None:
        """``{control: value}`` from an address's query string (``"?tab=toy&n=6"``), or None when it asks this tab
        for nothing (another tab, or only ``tab=``). Raises ``LinkError`` listing every problem."""
        pairs = parse_qsl((query or "").lstrip("?"), keep_blank_values=True)
        wanted = {key: value for key, value in pairs}.get("tab", "").strip().lower()
        if wanted != self.tab:
            return None
        by_name, values, problems, seen = self._by_name(), {}, [], set()
        for key, text in pairs:
            if key == "tab":
                continue
            param = by_name.get(key)
            if param is None:
                problems.append(f"there is no parameter {_quoted(key)} here")
                continue
            if param.name in seen:
                problems.append(f"{param.name} is given twice")
                continue
            seen.add(param.name)
            try:
                values[param.control] = param.parse(text)
            except LinkError as error:
                problems.append(str(error))
        if not problems and values:
            try:
                self.check(values)
            except (ValueError, gr.Error) as error:
                problems.append(_message(error))
        if problems:
            names = ", ".join(p.name for p in self.params)
            raise LinkError(
                f"This link's settings were not used, so nothing from it ran: {'; '.join(p.rstrip('.') for p in problems)}. "
                f"The {self.tab} tab's links take {names} (see the README's table)."
            )
        return values or None

    def asks(self, query: str) -> bool:
        """Whether the address sets this tab's controls with values it can use (so the tab runs them, not its opening)."""
        try:
            return self.read(query) is not None
        except LinkError:
            return False

    def write(self, values: Mapping[str, object]) -> str:
        """The query string (``"?tab=toy&n=6&…"``) for ``{control: value}``, in ``params`` order."""
        pairs = [("tab", self.tab)]
        for param in self.params:
            if param.control in values and values[param.control] is not None:
                value = values[param.control]
                if param.kind is int:
                    value = int(value)
                elif param.kind is float:
                    value = f"{float(value):g}"
                pairs.append((param.name, str(value)))
        return "?" + urlencode(pairs)


def _message(error: Exception) -> str:
    """An error's message for the learner: gradio's ``Error`` keeps it in ``.message``."""
    text = getattr(error, "message", None) or str(error)
    return text.rstrip(".")


# The query string of the address the app was opened at, in the browser: the page's own (the app's page, or an
# iframe's src), else a <gradio-app> web component's src, the first that names a tab.
READ_ADDRESS_JS = """() => {
  const host = document.querySelector('gradio-app[src]');
  const addresses = [window.location.href, host ? new URL(host.getAttribute('src'), window.location.href).href : null];
  for (const address of addresses) {
    if (address && new URL(address).searchParams.get('tab')) return new URL(address).search;
  }
  return '';
}"""

# The full address for a query string: the app's own (a web component's src where it is one), with that query.
# Copied to the clipboard where the browser allows it; the box shows it either way.
FULL_ADDRESS_JS = """(query) => {
  if (!query || !query.startsWith('?')) return query;
  const host = document.querySelector('gradio-app[src]');
  const address = new URL(host ? new URL(host.getAttribute('src'), window.location.href).href : window.location.href);
  address.search = query;
  address.hash = '';
  try { navigator.clipboard.writeText(address.href).catch(() => {}); } catch (error) {}
  return address.href;
}"""


def layout(tab: str) -> dict:
    """The Copy link row of a tab, and the line that reports a link's problems: ``{name: component}`` for its Panels."""
    with gr.Row(equal_height=True):
        copy = gr.Button("Copy link", size="sm", scale=0, min_width=120, elem_id=f"{tab}-copy-link")
        address = gr.Textbox(
            show_label=False,
            placeholder="Copy link gives the address of the experiment shown, to share or to put in a course page",
            interactive=False,
            buttons=["copy"],
            scale=5,
            elem_id=f"{tab}-link",
        )
    note = gr.Markdown(elem_id=f"{tab}-link-note")
    return {"copy_link": copy, "link": address, "link_note": note}


def wire(
    blocks: gr.Blocks,
    panels,
    link: TabLink,
    apply: Callable[[dict], dict],
    sets: tuple[str, ...],
    on_screen: tuple[str, ...],
    shown: Callable[..., dict],
    run_button: str | None = None,
    queue: dict | None = None,
    nothing: str = "Nothing here can be put in a link: choose one of the examples first.",
) -> None:
    """A tab's two link events: its controls from the address as the page opens, and Copy link.

    Args:
        apply: ``{control: value}`` read from the address -> ``{panel name: value}`` for the panels ``sets``.
        sets: the panels the address can change.
        on_screen: the panels that say what is shown; ``shown(*their values)`` returns ``{control: value}``
            for ``link.write`` (an empty dict: nothing a link can hold, such as the learner's own drawing).
        run_button: the ``elem_id`` of the button that runs what the controls say, clicked once they are set;
            None when setting them runs it already (a picture put on a pad analyses itself, or ``apply`` draws it).
        queue: the ``serving.queue(...)`` the address's event joins when ``apply`` does real work (None: it is
            only values, answered at once, outside the queue).
        nothing: what the link box says when ``shown`` finds nothing a link can hold.
    """
    query = gr.Textbox(visible=False)
    ran = gr.Checkbox(visible=False, value=False)

    def from_address(address: str) -> dict:
        try:
            values = link.read(address)
        except LinkError as error:
            return {panels["link_note"]: f"⚠️ {error}", ran: False}
        if values is None:
            return {ran: False}
        return {**panels.keyed(apply(values)), panels["link_note"]: "", ran: run_button is not None}

    opened = blocks.load(
        from_address,
        inputs=query,
        outputs=[*panels(*sets), panels["link_note"], ran],
        js=READ_ADDRESS_JS,
        api_visibility="private",
        **(queue if queue is not None else {"queue": False}),
    )
    if run_button is not None:
        opened.then(
            None,
            inputs=ran,
            js=f"(ran) => {{ if (ran) document.getElementById({run_button!r})?.click(); }}",
            api_visibility="private",
            queue=False,
        )

    def address_of(*values) -> str:
        state = shown(*values)
        return link.write(state) if state else nothing

    panels["copy_link"].click(
        address_of, inputs=panels(*on_screen), outputs=panels["link"], api_visibility="private", queue=False
    ).then(
        None, inputs=panels["link"], outputs=panels["link"], js=FULL_ADDRESS_JS, api_visibility="private", queue=False
    )


def opening(blocks: gr.Blocks, panels, link: TabLink, draw: Callable, fills: tuple[str, ...], queue: dict) -> None:
    """As the page opens, the tab's opening view into the panels ``fills``: ``draw(progress)`` returns
    ``{panel name: value}``. An address that asks for an experiment of the tab's own (``link.asks``) leaves them as
    they are: ``wire``'s event draws that one instead. ``queue``: the ``serving.queue(...)`` the drawing joins."""

    def open_tab(address, progress=gr.Progress()):
        return dict.fromkeys(fills, gr.skip()) if link.asks(address) else draw(progress)

    blocks.load(
        panels.filled_by(open_tab),
        inputs=gr.Textbox(visible=False),  # the address, read into it in the browser
        outputs=panels(*fills),
        js=READ_ADDRESS_JS,
        api_visibility="private",
        **queue,
    )
