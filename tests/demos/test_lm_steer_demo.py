"""The language-model tab's steering, as its handler streams it: the bundled SAE's feature on the offline SmolLM2."""

import gradio as gr
import pytest

from demos import lm_steer
from superpos_core import lm
from superpos_core.lm import features
from tests.contracts import summary_keys
from tests.helpers import forward_hooks

pytestmark = pytest.mark.slow  # the real SmolLM2 writes text: not in the quick run (-m "not slow")

MODEL = "smollm2-135m-offline"
KING = 1189  # fires on "king" before a name
quiet = lambda *a, **k: None  # noqa: E731  stands in for gr.Progress


@pytest.fixture(scope="module")
def loaded():
    features.feature_sae(MODEL)
    return lm.load(MODEL)


def test_steering_streams_both_continuations_then_the_whole_summary(loaded):
    before = forward_hooks(loaded)
    shown = list(lm_steer.steer_event(lm_steer.PROMPT, MODEL, None, KING, 1.0, 6, None, progress=quiet))
    first, last = shown[0], shown[-1]
    assert list(first) == ["summary", "status", "shift", "baseline", "steered"]
    assert first["summary"]["generated"] == 0 and "KL =" in first["status"] and "| gained | lost |" in first["shift"]
    assert f"With feature #{KING} at strength 1" == first["steered"].label
    assert [s["summary"]["generated"] for s in shown[1:]] == list(range(1, len(shown)))
    assert all(s["steered"].endswith(lm_steer.WRITING) for s in shown[1:-1])  # still being written
    summary = last["summary"]
    assert set(summary) == summary_keys("/lm_steer") and summary["complete"] and summary["tokens"] == 6
    assert last["steered"] == summary["steered"] != summary["baseline"] == last["baseline"]
    assert last["status"].endswith("new tokens each, greedy decoding (the likeliest token each time).")
    assert forward_hooks(loaded) == before


def test_bad_steering_requests_get_messages_that_say_what_would_work(loaded):
    def refused(*args) -> str:
        with pytest.raises(gr.Error) as error:
            list(lm_steer.steer_event(*args, progress=quiet))
        return error.value.message

    assert "from 1 to 64" in refused(lm_steer.PROMPT, MODEL, None, KING, 1.0, 65, None)
    assert "from 0 to 2,303" in refused(lm_steer.PROMPT, MODEL, None, 2304, 1.0, 4, None)
    assert "prompt is empty" in refused("  \n", MODEL, None, KING, 1.0, 4, None)
    assert "must be a number" in refused(lm_steer.PROMPT, MODEL, None, KING, "lots", 4, None)
    assert "finite number" in refused(lm_steer.PROMPT, MODEL, None, KING, float("nan"), 4, None)
    assert "reads layer 15" in refused(lm_steer.PROMPT, MODEL, 3, KING, 1.0, 4, None)
    assert "seed" in refused(lm_steer.PROMPT, MODEL, None, KING, 1.0, 4, -1)


def test_a_stop_between_two_tokens_ends_with_what_is_written(loaded):
    before = forward_hooks(loaded)
    asked = iter([False, False, True])
    shown = list(
        lm_steer.steer_event(
            lm_steer.PROMPT, MODEL, None, KING, 1.0, 20, 4, progress=quiet, stopped=lambda: next(asked)
        )
    )
    last = shown[-1]
    assert last["summary"]["generated"] == 2 and not last["summary"]["complete"]
    assert "Stopped after 2 of 20 new tokens each" in last["status"] and "sampling" not in last["status"]
    assert last["steered"] == last["summary"]["steered"] == shown[-2]["steered"].rstrip(lm_steer.WRITING)
    assert forward_hooks(loaded) == before
