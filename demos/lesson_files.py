"""Lessons as data: one TOML file per lesson in ``lessons/``, read and checked here (no gradio, usable anywhere).

A lesson is a title, its place in the course and a list of steps. Each step is a short text, one experiment given
as a link (what the tab's **Copy link** button gives, from ``?``), a question the learner answers before running
it, and which number of the experiment's JSON summary answers it, with the answer the lesson states (the tests run
every step and check it). ``lessons/README.md`` shows a whole file; ``python -m demos.lessons FILE`` checks
one and prints what each step's experiment answers.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

# lessons/ beside demos/: the repository's root in a checkout, superpos/ once installed (pyproject.toml puts it there).
FOLDER = Path(__file__).resolve().parent.parent / "lessons"

# The tabs a step's link may name, and the endpoints a step may ask (each tab's main one first: the default).
ENDPOINTS = {"toy": ("toy", "toy_sae"), "mnist": ("mnist",), "resnet": ("resnet",), "lm": ("lm",)}


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and the step, for the teacher who wrote it."""


@dataclass(frozen=True)
class Step:
    title: str
    text: str  # Markdown: what to look at, before running
    link: str  # the experiment: "?tab=toy&n=5&m=2&S=0.9" (the tab's Copy link, from the "?")
    question: str
    answer: str  # the key of the endpoint's JSON summary that answers it (dots for nested keys: "effective_rank.fc1")
    expect: object  # what the lesson says the app finds (a number, true/false, or a word); the tests check it
    explain: str = ""  # Markdown shown beside the answer: what it means
    tolerance: float = 0.0  # a numeric guess within this of the answer counts as right
    choices: dict[str, object] = field(default_factory=dict)  # label -> the summary value it stands for
    endpoint: str = ""  # "" for the link's tab's main endpoint; "toy_sae" for the toy tab's SAE lab
    inputs: dict[str, object] = field(default_factory=dict)  # the endpoint's other inputs (the SAE lab's latents…)

    @property
    def tab(self) -> str:
        return dict(parse_qsl(self.link.lstrip("?"))).get("tab", "")

    @property
    def runs(self) -> str:
        """The endpoint whose summary answers the question."""
        return self.endpoint or ENDPOINTS[self.tab][0]

    def answer_of(self, summary: dict) -> object:
        """The summary's value at ``answer``; raises ``LessonError`` when the summary has no such key."""
        value: object = summary
        for key in self.answer.split("."):
            if not isinstance(value, dict) or key not in value:
                raise LessonError(f"the /{self.runs} summary has no {self.answer!r} (it has {', '.join(summary)})")
            value = value[key]
        return value

    def label_of(self, value: object) -> object:
        """For a choice question, the choice that stands for ``value`` (the value itself when none does)."""
        for label, meaning in self.choices.items():
            if _same(meaning, value, self.tolerance):
                return label
        return value

    def holds(self, guess: object, value: object) -> bool:
        """Whether a guess (a number, or a choice's label) matches the experiment's value."""
        if self.choices:
            return guess in self.choices and _same(self.choices[guess], value, self.tolerance)
        return _same(guess, value, self.tolerance)


def _same(a: object, b: object, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance + 1e-9
    return a == b


@dataclass(frozen=True)
class Lesson:
    id: str  # the file's name without .toml: "01-toy-model"; ?tab=lessons&lesson=01-toy-model
    title: str
    chapter: str  # the course's chapter it follows, as the course names it
    about: str
    steps: tuple[Step, ...]


STEP_KEYS = {f for f in Step.__dataclass_fields__}
REQUIRED = ("title", "text", "link", "question", "answer", "expect")


def read(path: Path) -> Lesson:
    """One lesson file, checked: every problem is a ``LessonError`` naming the file and the step."""
    path = Path(path)
    where = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LessonError(f"{where}: not a TOML file we can read ({error})") from None
    for key in ("title", "chapter", "about"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise LessonError(f'{where}: needs a {key} = "…" line at the top')
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise LessonError(f"{where}: has no steps (each begins with a [[steps]] line)")
    steps = tuple(_step(raw, f"{where}, step {number}") for number, raw in enumerate(raw_steps, 1))
    return Lesson(path.stem, data["title"].strip(), data["chapter"].strip(), data["about"].strip(), steps)


def _step(raw: dict, where: str) -> Step:
    unknown = set(raw) - STEP_KEYS
    if unknown:
        raise LessonError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a step has {', '.join(sorted(STEP_KEYS))}"
        )
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise LessonError(f"{where}: missing {', '.join(missing)}")
    for key in ("title", "text", "link", "question", "answer", "explain", "endpoint"):
        if key in raw and not isinstance(raw[key], str):
            raise LessonError(f"{where}: {key} must be text in quotes")
    if not isinstance(raw.get("choices", {}), dict) or not isinstance(raw.get("inputs", {}), dict):
        raise LessonError(f"{where}: choices and inputs are tables ({{ label = value, … }})")
    step = Step(**{**raw, "link": raw["link"].strip(), "tolerance": float(raw.get("tolerance", 0.0))})
    if not step.link.startswith("?") or step.tab not in ENDPOINTS:
        raise LessonError(f"{where}: link must begin ?tab= with one of {', '.join(ENDPOINTS)} (got {step.link[:60]!r})")
    if step.endpoint and step.endpoint not in ENDPOINTS[step.tab]:
        raise LessonError(
            f"{where}: the {step.tab} tab has no endpoint {step.endpoint!r} ({', '.join(ENDPOINTS[step.tab])})"
        )
    if step.inputs and step.runs == ENDPOINTS[step.tab][0]:
        raise LessonError(
            f"{where}: inputs are for an endpoint beyond the link (such as toy_sae); the link holds the rest"
        )
    if step.choices:
        if len(step.choices) < 2:
            raise LessonError(f"{where}: a choice question needs at least two choices")
        if step.expect not in step.choices:
            raise LessonError(
                f"{where}: expect = {step.expect!r} is not one of the choices ({', '.join(step.choices)})"
            )
    elif isinstance(step.expect, bool) or not isinstance(step.expect, (int, float)):
        raise LessonError(f"{where}: without choices, expect is the number the learner guesses (got {step.expect!r})")
    return step


def load(folder: Path = FOLDER) -> tuple[dict[str, Lesson], list[str]]:
    """Every lesson in ``folder``, by id in file order, and a message for each file that could not be used."""
    lessons, problems = {}, []
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            lessons[path.stem] = read(path)
        except LessonError as error:
            problems.append(str(error))
    return lessons, problems


def expected_value(step: Step) -> object:
    """The summary value the lesson states: a choice's meaning, or the number itself."""
    return step.choices[step.expect] if step.choices else step.expect
