"""The Lessons tab: the course's chapters in order, each step an experiment to predict, then run, then compare.

A step shows a short text and a question; the learner answers it (a number, or one of a few choices) before Run
shows anything. Run then computes the step's experiment exactly as its tab does (the same functions, the same
seed) and puts the answer beside the guess, with the tab's own figure and a link that opens the experiment there.
Lessons are data, one TOML file each in ``lessons/`` (``demos/lesson_files.py``); each step is a page of its own:
``?tab=lessons&lesson=01-toy-model&step=2``.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch

from superpos_core import serving
from superpos_core.serving import in_background

from . import links
from . import lm as lm_tab
from . import mnist as mnist_tab
from . import resnet as resnet_tab
from . import toy as toy_tab
from . import toy_sae as toy_sae_tab
from .common import Panels, on_gpu
from .components import CheckedNumber, ChoiceDropdown
from .lesson_files import Lesson, LessonError, Step, load

# The tabs a lesson step runs its experiment on, id -> title, in the page's order (app.TABS adds the Lessons tab).
TABS = {"toy": "Toy model", "mnist": "Draw a digit (MNIST)", "resnet": "ResNet", "lm": "Language model"}
SHOWN = ("summary", "result", "figure")  # what Run fills, by name, the JSON summary first (the /lesson API's order)
VIEW = ("heading", "text", "question", "guess_number", "guess_choice", "result", "figure", "open_link", "step_label")
LONG = {"toy_sae"}  # endpoints whose run is long work (an SAE trained): they go to the long line


def _quiet(*args, **kwargs) -> None:
    """A progress callback that shows nothing (a step's progress is the Run button's own bar)."""


# --- a step's experiment, as its tab runs it ---------------------------------------------------------------------


def _toy_values(step: Step) -> dict:
    values = toy_tab.LINK.read(step.link) or {}
    return {**toy_tab.DEFAULTS, **values}


def _figure(update) -> np.ndarray | None:
    """A panel's picture, whether the tab returns it as an array or as an update that shows or hides it."""
    if isinstance(update, dict):
        return update.get("value") if update.get("visible", True) else None
    return update


def run_toy(step: Step, device: torch.device, progress) -> tuple[dict, np.ndarray | None]:
    shown = toy_tab.train_toy(**_toy_values(step), progress=progress, device=device)
    arrows = _figure(shown["arrows"])  # the features as directions when m = 2, else which features are kept
    return shown["summary"], arrows if arrows is not None else shown["bars"]


def run_toy_sae(step: Step, device: torch.device, progress) -> tuple[dict, np.ndarray | None]:
    toy_values = _toy_values(step)
    sae_values = {**toy_sae_tab.DEFAULTS, "latents": 2 * toy_values["n"], **step.inputs}
    shown = toy_sae_tab.train_toy_sae(
        toy_tab.read_controls, **toy_values, **sae_values, progress=progress, device=device
    )
    return shown["sae_summary"], shown["sae_cosines"]


def run_mnist(step: Step, device: torch.device, progress) -> tuple[dict, np.ndarray | None]:
    values = mnist_tab.LINK.read(step.link) or {"example": mnist_tab.OPENING_EXAMPLE}
    digit = mnist_tab.bundled_examples(mnist_tab.EXAMPLES)[values["example"]][0]
    shown = mnist_tab.analyse(mnist_tab.canvas_picture(digit), device)  # the picture the link puts on the pad
    return shown["summary"], shown["activations"]


def run_resnet(step: Step, device: torch.device, progress) -> tuple[dict, np.ndarray | None]:
    picture, model, layer = resnet_tab.linked(resnet_tab.LINK.read(step.link) or {})
    shown = resnet_tab.analyse(picture, model, layer, device)
    return shown["summary"], shown["ranks"]


def run_lm(step: Step, device: torch.device, progress) -> tuple[dict, np.ndarray | None]:
    values = lm_tab.link_for(False).read(step.link) or {}
    opening = dict(zip(("text", "model", "layer", "view"), lm_tab.opening_inputs(device, values.get("model"))))
    shown = lm_tab.analyse_text_event(**{**opening, **values}, device=device, progress=progress)
    return shown["summary"], shown["ranks"]


RUNNERS = {"toy": run_toy, "toy_sae": run_toy_sae, "mnist": run_mnist, "resnet": run_resnet, "lm": run_lm}


def run_experiment(step: Step, device: torch.device = torch.device("cpu"), progress=_quiet) -> tuple[dict, object]:
    """The step's endpoint's JSON summary and its figure, computed as the tab computes them."""
    return RUNNERS[step.runs](step, device, progress)


# --- the lesson library and a step's page ------------------------------------------------------------------------

LESSONS, PROBLEMS = load()


def _lesson(lesson_id: str) -> Lesson:
    if lesson_id not in LESSONS:
        known = ", ".join(LESSONS) or "none"
        raise gr.Error(f"There is no lesson {str(lesson_id)[:60]!r}; the lessons are {known}.", print_exception=False)
    return LESSONS[lesson_id]


def _step(lesson_id: str, number) -> Step:
    lesson = _lesson(lesson_id)
    try:
        index = int(number)
    except (TypeError, ValueError):
        index = 0
    if not 1 <= index <= len(lesson.steps) or index != number:
        raise gr.Error(f"{lesson.title} has steps 1 to {len(lesson.steps)}, not {number!r}.", print_exception=False)
    return lesson.steps[index - 1]


def step_view(lesson_id: str, number) -> dict:
    """A step's page before it is run: its text and question, the guess box it needs (empty), no answer yet."""
    lesson, step = _lesson(lesson_id), _step(lesson_id, number)
    index = int(number)
    choices = list(step.choices)
    opens = step.link
    return {
        "heading": f"### {lesson.chapter} · {lesson.title}\n\n**Step {index} of {len(lesson.steps)}: {step.title}**",
        "text": step.text,
        "question": f"**Your prediction first:** {step.question}",
        "guess_number": gr.update(value=None, visible=not choices),
        "guess_choice": gr.update(choices=choices, value=None, visible=bool(choices)),
        "result": "Make your guess, then press **Run it** to see what the network does.",
        "figure": None,
        "open_link": f"The experiment itself, to explore further: [open it in the {TABS[step.tab]} tab]({opens}).",
        "step_label": f"Step {index} of {len(lesson.steps)}",
    }


def _read_guess(step: Step, guess) -> object:
    text = "" if guess is None else str(guess).strip()
    if not text:
        raise gr.Error(
            "Make your guess first: the point is to commit to an answer before the network gives its own.",
            print_exception=False,
        )
    if step.choices:
        if text not in step.choices:
            raise gr.Error(f"Choose one of: {', '.join(step.choices)}.", print_exception=False)
        return text
    try:
        value = float(text)
    except ValueError:
        raise gr.Error(f"{text[:40]!r} is not a number: this question asks for one.", print_exception=False) from None
    if not np.isfinite(value):
        raise gr.Error("The guess must be a finite number.", print_exception=False)
    return int(value) if value == int(value) else value


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_step(lesson_id: str, step: int, guess, device: torch.device = torch.device("cpu"), progress=_quiet) -> dict:
    """``api_name="lesson"``: one step's experiment run, and its answer beside the learner's guess (``SHOWN``)."""
    the_step = _step(lesson_id, step)
    guessed = _read_guess(the_step, guess)
    progress(0.0, desc=f"Running the experiment on the {TABS[the_step.tab]} tab")
    try:
        summary, picture = run_experiment(the_step, device, progress)
        value = the_step.answer_of(summary)
    except LessonError as error:
        raise gr.Error(f"This step cannot be answered: {error}.", print_exception=False) from None
    answer = the_step.label_of(value) if the_step.choices else value
    right = the_step.holds(guessed, value)
    verdict = "**Your guess holds.**" if right else "**Not this time**: the figure below shows why."
    within = f" (within {the_step.tolerance:g})" if the_step.tolerance and not the_step.choices else ""
    result = f"You guessed **{_shown(guessed)}**; the network gives **{_shown(answer)}**{within}. {verdict}" + (
        f"\n\n{the_step.explain}" if the_step.explain else ""
    )
    return {
        "summary": {
            "lesson": lesson_id,
            "step": int(step),
            "question": the_step.question,
            "guess": guessed,
            "answer": answer,
            "value": value,
            "stated": the_step.expect,
            "right": right,
            "endpoint": the_step.runs,
            "link": the_step.link,
            "endpoint_summary": summary,
        },
        "result": result,
        "figure": picture,
    }


def problem(lesson_id: str, step, guess) -> str:
    """What the result line says when Run failed: the message the API caller gets."""
    try:
        the_step = _step(lesson_id, step)
        _read_guess(the_step, guess)
    except gr.Error as error:
        return f"⚠️ {error.message}"
    return "⚠️ The experiment did not run. Press Run it again."


# --- the tab -------------------------------------------------------------------------------------------------------


def _check_link(values: dict) -> None:
    lesson = values.get("lesson", next(iter(LESSONS), ""))
    if lesson not in LESSONS:
        raise ValueError(f"there is no lesson {lesson!r}; the lessons are {', '.join(LESSONS)}")
    count = len(LESSONS[lesson].steps)
    if not 1 <= values.get("step", 1) <= count:
        raise ValueError(f"step={values['step']} is out of range: {LESSONS[lesson].title} has steps 1 to {count}")


# ?tab=lessons&lesson=01-toy-model&step=2: that step's page (never run: the learner guesses first).
LINK = links.TabLink("lessons", (links.Param("lesson", "lesson", str), links.Param("step", "step", int)), _check_link)

# The learner's guess, read from whichever box the step shows, as Run is pressed (no round trip to the server). A\n# step shows one box; both are emptied whenever a step is shown, so the other holds nothing.
READ_GUESS_JS = """(lesson, step, guess) => {
  const box = document.querySelector('#lessons-guess-number input');
  const chosen = document.querySelector('#lessons-guess-choice input:checked');
  if (chosen) return [lesson, step, chosen.value];
  return [lesson, step, box ? box.value : ''];
}"""


def layout() -> Panels:
    """Lay out the Lessons tab inside the current ``gr.Tab``; its components, by name."""
    first = next(iter(LESSONS), None)
    gr.Markdown(
        "## Lessons\nThe course's chapters in order. Each step sets up one experiment and asks what you expect; "
        "answer first, then run it and compare. A teacher can link any step (Copy link), or add a lesson as a file."
    )
    if PROBLEMS:
        gr.Markdown("\n".join(f"⚠️ Not loaded: {problem_}" for problem_ in PROBLEMS), elem_id="lessons-problems")
    opening = step_view(first, 1) if first else None
    with gr.Row():
        lesson = ChoiceDropdown(
            [(f"{item.chapter}: {item.title}", key) for key, item in LESSONS.items()],
            value=first,
            label="Lesson",
            scale=4,
            elem_id="lessons-lesson",
        )
        step = CheckedNumber(value=1, precision=0, minimum=1, label="Step", visible=False, elem_id="lessons-step")
        back = gr.Button("← Previous step", size="sm", scale=1, elem_id="lessons-back")
        step_label = gr.Markdown(opening["step_label"] if opening else "", elem_id="lessons-step-label")
        forward = gr.Button("Next step →", size="sm", scale=1, elem_id="lessons-next")
    heading = gr.Markdown(opening["heading"] if opening else "No lessons found.", elem_id="lessons-heading")
    text = gr.Markdown(opening["text"] if opening else "", elem_id="lessons-text")
    question = gr.Markdown(opening["question"] if opening else "", elem_id="lessons-question")
    with gr.Row(equal_height=True):
        choices = list(opening and LESSONS[first].steps[0].choices or [])
        guess_number = gr.Number(
            label="Your guess", visible=not choices, interactive=True, elem_id="lessons-guess-number", scale=2
        )
        guess_choice = gr.Radio(
            choices,
            label="Your guess",
            visible=bool(choices),
            interactive=True,
            elem_id="lessons-guess-choice",
            scale=2,
        )
        guess = gr.Textbox(visible=False)
        run = gr.Button("Run it", variant="primary", scale=1, elem_id="lessons-run")
    result = gr.Markdown(opening["result"] if opening else "", elem_id="lessons-result")
    figure = gr.Image(label="What the network did", interactive=False, elem_id="lessons-figure", height=420)
    open_link = gr.Markdown(opening["open_link"] if opening else "", elem_id="lessons-open")
    link = links.layout("lessons")
    return Panels(
        lesson=lesson,
        step=step,
        back=back,
        forward=forward,
        step_label=step_label,
        heading=heading,
        text=text,
        question=question,
        guess_number=guess_number,
        guess_choice=guess_choice,
        guess=guess,
        run=run,
        summary=gr.JSON(visible=False),
        result=result,
        figure=figure,
        open_link=open_link,
        **link,
    )


def wire(blocks: gr.Blocks, panels: Panels, device: torch.device) -> None:
    """Connect the Lessons tab's events: a step's page, moving between steps, Run, and the step's link."""
    quiet = dict(api_visibility="private", queue=False, show_progress="hidden")

    @panels.filled_by
    def show(lesson_id, number):
        try:
            return step_view(lesson_id, number)
        except gr.Error as error:
            return {"result": f"⚠️ {error.message}"}

    def moved(lesson_id, number, by):
        count = len(LESSONS[lesson_id].steps) if lesson_id in LESSONS else 1
        return min(max(int(number or 1) + by, 1), count)

    for trigger in (panels["lesson"].change, panels["step"].change):
        trigger(show, inputs=panels("lesson", "step"), outputs=panels(*VIEW), **quiet)
    panels["lesson"].input(lambda lesson_id: 1, inputs=panels["lesson"], outputs=panels["step"], **quiet)
    panels["back"].click(lambda l, n: moved(l, n, -1), inputs=panels("lesson", "step"), outputs=panels["step"], **quiet)
    panels["forward"].click(
        lambda l, n: moved(l, n, +1), inputs=panels("lesson", "step"), outputs=panels["step"], **quiet
    )

    def lesson_step(lesson, step, guess, progress=gr.Progress()):
        the_step = _step(lesson, step)
        _read_guess(the_step, guess)  # a missing guess is said at once, never after the queue
        work = in_background(run_step, line="long" if the_step.runs in LONG else "quick")
        return work(lesson, step, guess, device, progress)

    panels["run"].click(
        on_gpu(panels.filled_by(lesson_step), duration=120),
        inputs=panels("lesson", "step", "guess"),
        outputs=panels(*SHOWN),
        js=READ_GUESS_JS,
        api_name="lesson",
        **serving.queue("lesson"),
    ).failure(
        lambda lesson, step, guess: problem(lesson, step, guess),
        inputs=panels("lesson", "step", "guess"),
        outputs=panels["result"],
        js=READ_GUESS_JS,
        **quiet,
    )
    links.wire(
        blocks,
        panels,
        LINK,
        apply=lambda values: {"lesson": values.get("lesson", next(iter(LESSONS))), "step": values.get("step", 1)},
        sets=("lesson", "step"),
        on_screen=("lesson", "step"),
        shown=lambda lesson, step: {"lesson": lesson, "step": int(step)} if lesson in LESSONS else {},
    )


def render(blocks: gr.Blocks, device: torch.device = torch.device("cpu")) -> None:
    panels = layout()
    wire(blocks, panels, device)


def main(argv: list[str] | None = None) -> int:
    """``python -m demos.lessons lessons/06-mine.toml``: check lesson files and run every step, printing each answer
    beside the one the file states (what a teacher runs before adding a lesson). Exits 1 when any does not hold."""
    import argparse
    from pathlib import Path

    from .lesson_files import read

    parser = argparse.ArgumentParser(prog="python -m demos.lessons", description=main.__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="lesson files (TOML)")
    failed = 0
    for path in parser.parse_args(argv).files:
        try:
            lesson = read(path)
        except LessonError as error:
            print(f"✗ {error}")
            failed += 1
            continue
        print(f"{path.name}: {lesson.title} ({len(lesson.steps)} steps)")
        for number, step in enumerate(lesson.steps, 1):
            try:
                summary, _ = run_experiment(step)
                value = step.answer_of(summary)
            except (LessonError, gr.Error) as error:
                print(f"  ✗ step {number}: {getattr(error, 'message', error)}")
                failed += 1
                continue
            holds = step.holds(step.expect, value)
            failed += not holds
            print(
                f"  {'✓' if holds else '✗'} step {number}: /{step.runs} {step.answer} = {_shown(value)}; the file states {step.expect!r}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
