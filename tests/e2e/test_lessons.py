"""Every lesson step run through the API, its stated answer checked against what the app computes (and run twice)."""

from __future__ import annotations

import pytest
from gradio_client import Client

from demos import lesson_files
from tests.contracts import summary_keys

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")

LESSONS, _ = lesson_files.load()
STEPS = [(key, number) for key, lesson in LESSONS.items() for number in range(1, len(lesson.steps) + 1)]


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, ssl_verify=False, verbose=False)


@pytest.mark.parametrize("lesson, number", STEPS, ids=[f"{key}-{number}" for key, number in STEPS])
def test_every_step_runs_and_its_stated_answer_holds(client, lesson, number):
    step = LESSONS[lesson].steps[number - 1]
    summary, result, _ = client.predict(lesson, number, str(step.expect), api_name="/lesson")
    assert set(summary) == summary_keys("/lesson")
    assert summary["endpoint"] == step.runs and summary["link"] == step.link
    assert summary["right"] is True, (
        f"{lesson} step {number} states {step.expect!r}; the app gives {summary['value']!r}"
    )
    assert summary["answer"] == (step.expect if step.choices else summary["value"])
    assert "Your guess holds" in result


@pytest.mark.parametrize("lesson, number", [("01-toy-model", 3), ("05-saes", 2), ("04-language-model", 2)])
def test_a_step_run_again_gives_the_same_numbers(client, lesson, number):
    # Everything in a step is seeded: opening its link twice, or pressing Run twice, shows the same numbers.
    first, _, _ = client.predict(lesson, number, "1", api_name="/lesson")
    again, _, _ = client.predict(lesson, number, "1", api_name="/lesson")
    assert again["endpoint_summary"] == first["endpoint_summary"]


def test_a_wrong_guess_is_told_so_beside_the_answer(client):
    summary, result, _ = client.predict("01-toy-model", 1, "4", api_name="/lesson")
    assert summary["right"] is False and summary["guess"] == 4 and summary["answer"] == 2
    assert "You guessed **4**; the network gives **2**" in result


@pytest.mark.parametrize(
    "args, says",
    [
        (("01-toy-model", 1, ""), "Make your guess first"),
        (("01-toy-model", 1, "many"), "is not a number"),
        (("02-mnist", 1, "all of them"), "Choose one of"),
        (("01-toy-model", 9, "2"), "has steps 1 to 4"),
        (("nope", 1, "2"), "Lesson: 'nope' is not in the list of choices"),
    ],
)
def test_bad_requests_get_a_clear_message(client, args, says):
    with pytest.raises(Exception, match=says):
        client.predict(*args, api_name="/lesson")
