"""Lesson files (``demos/lesson_files.py``): read, checked, and every problem named for the teacher who wrote it."""

import pytest

from demos import lesson_files

GOOD = """
title = "A lesson"
chapter = "Chapter 1"
about = "What it is about."

[[steps]]
title = "One"
text = "Look."
link = "?tab=toy&n=5&m=2&S=0.9"
question = "How many survive?"
answer = "represented"
expect = 5
"""


def write(tmp_path, text, name="06-mine.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_bundled_lessons_follow_the_course_and_all_load():
    lessons, problems = lesson_files.load()
    assert problems == []
    assert [lesson.chapter for lesson in lessons.values()] == [f"Chapter {n}" for n in range(1, 6)]
    assert {step.tab for lesson in lessons.values() for step in lesson.steps} == {"toy", "mnist", "resnet", "lm"}
    assert any(step.runs == "toy_sae" for step in lessons["05-saes"].steps)


def test_a_teachers_file_is_read_with_its_name_as_its_id(tmp_path):
    lessons, problems = lesson_files.load(write(tmp_path, GOOD).parent)
    assert problems == [] and list(lessons) == ["06-mine"]
    step = lessons["06-mine"].steps[0]
    assert (step.tab, step.runs, step.expect) == ("toy", "toy", 5)


@pytest.mark.parametrize(
    "change, says",
    [
        (("expect = 5", ""), "step 1: missing expect"),
        (('link = "?tab=toy&n=5&m=2&S=0.9"', 'link = "?tab=nowhere"'), "link must begin ?tab="),
        (("expect = 5", 'expect = "five"'), "expect is the number"),
        (("expect = 5", "expect = 5\ncolour = 3"), "unknown key(s) colour"),
        (("expect = 5", 'expect = 5\nendpoint = "lm"'), "no endpoint 'lm'"),
        (("expect = 5", "expect = 5\ninputs = { latents = 3 }"), "inputs are for an endpoint beyond the link"),
        (("expect = 5", 'expect = "maybe"\nchoices = { yes = true, no = false }'), "not one of the choices"),
        (('title = "A lesson"', ""), "needs a title"),
        (("[[steps]]", "[[stops]]"), "has no steps"),
        (("expect = 5", "expect = 5 ="), "not a TOML file"),
    ],
)
def test_a_broken_file_is_named_with_its_step_and_the_others_still_load(tmp_path, change, says):
    write(tmp_path, GOOD, "01-fine.toml")
    write(tmp_path, GOOD.replace(*change))
    lessons, problems = lesson_files.load(tmp_path)
    assert list(lessons) == ["01-fine"]
    assert len(problems) == 1 and problems[0].startswith("06-mine.toml") and says in problems[0]


def test_answers_are_read_from_nested_keys_and_scored_within_the_tolerance():
    step = lesson_files.Step("t", "t", "?tab=mnist&example=3", "q", "effective_rank.fc2", 55, tolerance=6)
    assert step.answer_of({"effective_rank": {"fc1": 112, "fc2": 55}}) == 55
    assert step.holds(50, 55) and step.holds(61, 55) and not step.holds(62, 55)
    with pytest.raises(lesson_files.LessonError, match="no 'effective_rank.fc2'"):
        step.answer_of({"effective_rank": {"fc1": 112}})


def test_a_choice_stands_for_a_value_and_true_is_not_one():
    choices = {"yes": True, "no": False}
    step = lesson_files.Step("t", "t", "?tab=toy", "q", "superposition", "yes", choices=choices)
    assert step.label_of(True) == "yes" and step.label_of(False) == "no"
    assert step.holds("yes", True) and not step.holds("no", True) and not step.holds("maybe", True)
    assert not step.holds("yes", 1)  # a count of 1 is not "true"
    ranged = lesson_files.Step(
        "t", "t", "?tab=toy", "q", "x", "about half", tolerance=0.12, choices={"about half": 0.5, "all": 1.0}
    )
    assert ranged.label_of(0.5938) == "about half" and ranged.holds("about half", 0.5938)
