"""Property-based fuzzing of every public endpoint, against the real server (issue 6).

    python -m pytest tests/e2e/test_fuzz.py -q

For every endpoint that ``view_api`` lists, hypothesis draws arguments: random pictures in every
format and mode (1×1, hair-thin, 16-bit, palette, alpha, float, CMYK), garbage and truncated files
with picture names, text of every kind (control characters, emoji, right-to-left, up to 200,000
characters), wrong types (None, lists, dicts, numbers for text, text for numbers, NaN, infinity,
negative and huge integers) and unknown model and layer names. Before the random draws, every
parameter of every endpoint is sent None and a 200,000-character string, the rest kept valid.
The draws are built in ``tests/e2e/fuzz_inputs.py``; this file says what each endpoint is sent. The
property, for every call:

* the answer is a normal one, whose first output is the endpoint's JSON summary; or
* it is refused with ``gradio_client.exceptions.AppError`` whose message is a short sentence for a
  person: not a traceback, not a bare "Error", no Python jargon, no path on the server.

After each endpoint's batch one normal request must be answered correctly (the next user is served),
and the server must not have printed a traceback meanwhile: refusals are expected, crashes are not.

The examples are drawn with ``derandomize=True``: the same ones on every run and every machine, so
a failure in CI reproduces locally. Draws are kept cheap on purpose (few training steps and epochs,
only the models bundled here, never one that would be downloaded) so the file runs in about a
minute and a half on a 2-core CPU.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from demos import lesson_files
from superpos_core import concepts, lm, resnets, toy_sae
from tests.contracts import summary_keys
from tests.e2e.fuzz_inputs import (
    HUGE,
    Upload,
    any_text,
    canvas,
    digit_upload,
    files,
    junk,
    mixed,
    not_costly,
    odd_text,
    plain_text,
    unknown_name,
)
from tests.helpers import forward_hooks

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")

LM = "smollm2-135m-offline"  # the one language model on every machine, so the only one fuzzed
VIEWS = ["most variable 64 dimensions", "all dimensions"]
SENTENCE = "It was the best of times, it was the worst of times."
MAX_STEPS, MAX_EPOCHS = 50, 100  # training budgets the draws stay within: bigger ones are valid, just slow


# --- what each endpoint is sent, and what a normal answer looks like ----------------------------


@dataclass
class Fuzz:
    arguments: st.SearchStrategy[tuple]
    baseline: tuple  # valid and cheap: each parameter in turn is replaced by None and by HUGE
    answered: Callable[[object], None]  # asserts that a normal answer's first output is the summary
    next_user: Callable[[Client], None]  # a normal request, answered correctly
    examples: int  # random draws, besides the explicit ones

    def explicit(self) -> list[tuple]:
        swapped = [
            self.baseline[:i] + (value,) + self.baseline[i + 1 :]
            for i in range(len(self.baseline))
            for value in (None, HUGE)
        ]
        return [self.baseline, *swapped]


def answered_toy(summary):
    assert set(summary) == summary_keys("/toy")
    assert isinstance(summary["superposition"], bool) and summary["superposition"] == (
        summary["features_per_dimension"] > 1.1
    )
    assert len(summary["feature_norms"]) == len(summary["dimensionality"]) == summary["n_features"]


def answered_sweep(summary):
    assert len(summary["represented"]) == len(summary["sparsity"]) == len(summary["features_per_dimension"]) == 20


def answered_toy_sae(summary):
    assert set(summary) == summary_keys("/toy_sae")
    n, latents = summary["n_features"], summary["latents"]
    assert len(summary["cosines"]) == len(summary["matched_cosine"]) == n and all(
        len(r) == latents for r in summary["cosines"]
    )
    assert 0 <= summary["recovered"] <= n and 0 <= summary["dead"] <= latents


def answered_toy_sae_sweep(summary):
    assert set(summary) == summary_keys("/toy_sae_sweep")
    assert len(summary["penalties"]) == len(summary["recovered"]) == len(summary["explained_variance"]) == 10


def answered_mnist(summary):
    assert summary["prediction"] in range(10) and len(summary["probabilities"]) == 10
    assert {k: len(v) for k, v in summary["activations"].items()} == {"fc1": 128, "fc2": 64, "fc3": 10}


def answered_train(status):
    assert isinstance(status, str) and status.startswith("Done"), status


def answered_resnet(summary):
    assert summary["model"] == "mnist-resnet" and summary["layer"] in resnets.layer_names("mnist-resnet")
    assert isinstance(summary["channels"], int) and len(summary["top5"]) == 5


def answered_lm(summary):
    assert summary["model"] == LM and 1 <= len(summary["tokens"]) <= 1024 and len(summary["next_tokens"]) == 5


def answered_sae(summary):
    assert len(summary["mean_activation"]) == summary["features"] and summary["mse"] >= 0


def answered_features(summary):
    assert set(summary) == summary_keys("/lm_features") and summary["layer"] == FEATURES_LAYER
    assert len(summary["per_token"]) == len(summary["tokens"]) >= 1


def answered_feature(summary):
    assert set(summary) == summary_keys("/lm_feature") and 0 <= summary["feature"] < summary["d_sae"]


def answered_steer(summary):
    assert set(summary) == summary_keys("/lm_steer") and summary["complete"] and summary["kl"] >= 0
    assert 1 <= summary["tokens"] <= 64 and summary["generated"] <= summary["tokens"]
    assert no_steering_hook()  # and none left between calls either (next_steer)


def no_steering_hook() -> bool:
    """Whether the server's SmolLM2 (this process's) carries no steering hook now."""
    loaded = lm.loaded_now(LM, torch.device("cpu"))
    return loaded is None or not any("steering_hook" in name for block in forward_hooks(loaded) for name in block)


def answered_concepts(summary):
    assert summary["model"] == LM and len(summary["concepts"]) >= 2 and len(summary["labels"]) >= 2


def next_toy(client):
    summary = client.predict(5, 2, 0.99, 1.0, 1000, 0, api_name="/toy")[0]
    assert len(summary["feature_norms"]) == 5 and min(summary["feature_norms"]) >= 0.9  # the pentagon


def next_sweep(client):
    summary = client.predict(5, 2, 0.9, 300, 0, api_name="/toy_sweep")[0]
    assert len(summary["represented"]) == 20 and summary["sparsity"][0] == 0.0


def answered_lesson(summary):
    assert set(summary) == summary_keys("/lesson")
    assert isinstance(summary["right"], bool) and summary["endpoint"] in ("toy", "toy_sae", "mnist", "resnet", "lm")


def next_lesson(client):
    summary = client.predict("01-toy-model", 1, "2", api_name="/lesson")[0]
    assert summary["right"] is True and summary["answer"] == 2  # the dense toy model keeps two features


def next_toy_sae(client):
    summary = client.predict(5, 2, 0.99, 1.0, 1000, 0, None, 0.3, 1500, 0, api_name="/toy_sae")[0]
    assert summary["latents"] == 10 and summary["recovered"] == 5  # the pentagon's five features, found


def next_toy_sae_sweep(client):
    summary = client.predict(5, 2, 0.99, 1.0, 300, 0, None, 100, 0, api_name="/toy_sae_sweep")[0]
    assert summary["latents"] == 10 and len(summary["recovered"]) == 10


def next_mnist(client):
    upload, label = digit_upload()
    with tempfile.TemporaryDirectory() as folder:
        picture = {"background": with_files(upload, folder), "layers": [], "composite": None}
        assert client.predict(picture, api_name="/mnist")[0]["prediction"] == label


def next_train(client):
    status, table, _plot = client.predict(1, 0, api_name="/mnist_train")
    assert "Done" in status and table["data"][0][2] > 85  # test accuracy in %


def next_resnet(client):
    upload, label = digit_upload()
    with tempfile.TemporaryDirectory() as folder:
        assert client.predict(with_files(upload, folder), "mnist-resnet", "layer3.1.conv2", api_name="/resnet")[0][
            "top5"
        ][0][0] == str(label)


def next_lm(client):
    assert client.predict(SENTENCE, LM, 10, VIEWS[0], api_name="/lm")[0]["tokens"][:4] == [
        "It",
        " was",
        " the",
        " best",
    ]


def next_sae(client):
    summary = client.predict(SENTENCE, LM, 10, 16, 0.01, 500, 0, api_name="/lm_sae")[0]
    assert summary["features"] == 16 and len(summary["mean_activation"]) == 16


def next_features(client):
    summary = client.predict(SENTENCE, LM, None, api_name="/lm_features")[0]
    assert summary["tokens"][:2] == ["It", " was"] and summary["top_features"]


def next_feature(client):
    assert client.predict(LM, None, 5, api_name="/lm_feature")[0]["feature"] == 5


def next_steer(client):
    summary = client.predict("Yesterday I went to the market and", LM, None, 1189, 0, 4, None, api_name="/lm_steer")[0]
    assert summary["steered"] == summary["baseline"] and summary["kl"] == 0  # the model is as it was
    assert no_steering_hook()


def next_concepts(client):
    summary = client.predict(CONCEPT_WORDS, CONCEPT_SENTENCES, LM, 10, api_name="/lm_concepts")[0]
    assert summary["sentences"] == 24 and summary["concepts"] == ["positive", "negative", "neutral"]


LAYERS = resnets.layer_names("mnist-resnet")
CONCEPT_WORDS, CONCEPT_SENTENCES = (
    concepts.format_concepts(concepts.CONCEPTS),
    concepts.format_sentences(concepts.SENTENCES),
)
seeds = st.integers(0, 2**32)
lm_layers = st.integers(0, 30)  # SmolLM2-135M: the embeddings and 30 blocks
FEATURES_LAYER = 15  # the layer of the SAE trained here for SmolLM2
feature_layers = st.one_of(st.none(), st.just(FEATURES_LAYER), lm_layers)
bad_model = st.one_of(unknown_name(set(lm.CATALOGUE)), junk)  # never a real catalogue name: it might be downloaded
short_text = st.one_of(
    plain_text.filter(str.strip),
    odd_text,
    st.sampled_from([SENTENCE, "🙂👍 emoji", "超位置の表現", "مرحبا بالعالم", "tab\tand\x07bell"]),
)
labelled_lines = st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=6).map(
    lambda rows: "\n".join(f"{a}: {b}" for a, b in rows)
)

LESSON_IDS = sorted(lesson_files.load()[0])
FUZZ = {
    "/lesson": Fuzz(
        mixed(
            [
                st.sampled_from(LESSON_IDS),
                st.integers(1, 4),
                st.one_of(st.integers(-5, 200).map(str), st.sampled_from(["about half", "more than 90%", "", "  "])),
            ],
            [junk, junk, junk],
        ),
        ("01-toy-model", 1, "2"),
        answered_lesson,
        next_lesson,
        8,
    ),
    "/toy": Fuzz(
        mixed(
            [
                st.integers(2, 8),
                st.integers(1, 4),
                st.floats(0, 0.999),
                st.floats(0.5, 1),
                st.integers(1, MAX_STEPS),
                seeds,
            ],
            [junk, junk, junk, junk, junk.filter(not_costly(MAX_STEPS)), junk],
        ),
        (5, 2, 0.9, 1.0, MAX_STEPS, 0),
        answered_toy,
        next_toy,
        10,
    ),
    "/toy_sweep": Fuzz(
        mixed(
            [st.integers(2, 6), st.integers(1, 3), st.floats(0.5, 1), st.integers(1, MAX_STEPS), seeds],
            [junk, junk, junk, junk.filter(not_costly(MAX_STEPS)), junk],
        ),
        (5, 2, 1.0, MAX_STEPS, 0),
        answered_sweep,
        next_sweep,
        6,
    ),
    "/toy_sae": Fuzz(
        mixed(
            [
                st.integers(2, 6),
                st.integers(1, 3),
                st.floats(0, 0.999),
                st.floats(0.5, 1),
                st.integers(1, MAX_STEPS),
                seeds,
                st.one_of(st.none(), st.integers(6, 16)),
                st.floats(0, 1),
                st.integers(1, MAX_STEPS),
                seeds,
            ],
            [junk, junk, junk, junk, junk.filter(not_costly(MAX_STEPS)), junk]
            + [junk, junk, junk.filter(not_costly(MAX_STEPS, refused_above=toy_sae.MAX_SAE_STEPS)), junk],
        ),
        (5, 2, 0.9, 1.0, MAX_STEPS, 0, 10, 0.3, MAX_STEPS, 0),
        answered_toy_sae,
        next_toy_sae,
        8,
    ),
    "/toy_sae_sweep": Fuzz(
        mixed(
            [
                st.integers(2, 5),
                st.integers(1, 3),
                st.floats(0, 0.999),
                st.floats(0.5, 1),
                st.integers(1, MAX_STEPS),
                seeds,
                st.one_of(st.none(), st.integers(5, 10)),
                st.integers(1, MAX_STEPS // 5),
                seeds,
            ],
            [junk, junk, junk, junk, junk.filter(not_costly(MAX_STEPS)), junk]
            + [junk, junk.filter(not_costly(MAX_STEPS // 5, refused_above=toy_sae.MAX_SAE_STEPS)), junk],
        ),
        (5, 2, 0.9, 1.0, MAX_STEPS, 0, 10, MAX_STEPS // 5, 0),
        answered_toy_sae_sweep,
        next_toy_sae_sweep,
        4,
    ),
    "/mnist": Fuzz(
        st.tuples(st.one_of(canvas(files), canvas(junk), junk)),
        ({"background": digit_upload()[0], "layers": [], "composite": None},),
        answered_mnist,
        next_mnist,
        25,
    ),
    "/mnist_train": Fuzz(
        mixed([st.just(1), seeds], [junk.filter(not_costly(1, refused_above=5)), junk]),
        (1, 0),
        answered_train,
        next_train,
        5,
    ),
    "/resnet": Fuzz(
        mixed(
            [files, st.just("mnist-resnet"), st.sampled_from(LAYERS)],
            [junk, st.one_of(unknown_name(set(resnets.CATALOGUE)), junk), st.one_of(unknown_name(set(LAYERS)), junk)],
        ),
        (digit_upload()[0], "mnist-resnet", "conv1"),
        answered_resnet,
        next_resnet,
        15,
    ),
    "/lm": Fuzz(
        mixed([any_text, st.just(LM), lm_layers, st.sampled_from(VIEWS)], [junk, bad_model, junk, junk]),
        (SENTENCE, LM, 3, VIEWS[0]),
        answered_lm,
        next_lm,
        10,
    ),
    "/lm_sae": Fuzz(
        mixed(
            [
                short_text,
                st.just(LM),
                lm_layers,
                st.integers(4, 64),
                st.floats(0, 1),
                st.integers(50, MAX_EPOCHS),
                seeds,
            ],
            [junk, bad_model, junk, junk.filter(not_costly(64)), junk, junk.filter(not_costly(MAX_EPOCHS)), junk],
        ),
        (SENTENCE, LM, 3, 8, 0.01, 50, 0),
        answered_sae,
        next_sae,
        7,
    ),
    "/lm_features": Fuzz(
        mixed([short_text, st.just(LM), feature_layers], [junk, bad_model, junk]),
        (SENTENCE, LM, None),
        answered_features,
        next_features,
        6,
    ),
    "/lm_feature": Fuzz(
        mixed([st.just(LM), feature_layers, st.integers(0, 2303)], [bad_model, junk, junk]),
        (LM, None, 0),
        answered_feature,
        next_feature,
        6,
    ),
    "/lm_steer": Fuzz(
        mixed(
            [
                short_text,
                st.just(LM),
                feature_layers,
                st.integers(0, 2303),
                st.floats(-10, 10),
                st.integers(1, 3),
                st.one_of(st.none(), seeds),
            ],
            [junk, bad_model, junk, junk, junk, junk.filter(not_costly(3, refused_above=64)), junk],
        ),
        ("Yesterday I went to the market and", LM, None, 1189, 1.0, 2, None),
        answered_steer,
        next_steer,
        6,
    ),
    "/lm_concepts": Fuzz(
        mixed(
            [
                st.one_of(st.just(CONCEPT_WORDS), labelled_lines),
                st.one_of(st.just(CONCEPT_SENTENCES), labelled_lines),
                st.just(LM),
                lm_layers,
            ],
            [st.one_of(junk, labelled_lines), st.one_of(junk, labelled_lines), bad_model, junk],
        ),
        (CONCEPT_WORDS, CONCEPT_SENTENCES, LM, 3),
        answered_concepts,
        next_concepts,
        8,
    ),
}

# --- sending, and judging the answer ------------------------------------------------------------

JARGON = [
    "Traceback",
    "site-packages",
    'File "',
    "NoneType",
    "<class '",
    "Could not preprocess",
    "validation error",
    "pydantic",
    "object has no attribute",
    "not supported between instances",
    "argument must be",
    "unhashable type",
    "could not convert",
    "invalid literal",
    "upstream Gradio app has raised an exception",
    "errors.pydantic.dev",
]
SERVER_PATH = re.compile(r"(?<![\w.~])/(?:tmp|home|root|usr|var|work|etc|private)/")
MAX_MESSAGE = 1000  # characters


def assert_clear(message: str) -> None:
    """A refusal a person can act on: one short sentence or two, no traceback, no jargon, no server paths."""
    text = message.strip()
    assert text and text.lower() not in {"error", "none", "null"}, f"a bare message: {message!r}"
    assert len(text) <= MAX_MESSAGE, f"a message of {len(text):,} characters: {text[:200]!r}…"
    for word in JARGON:
        assert word not in text, f"{word!r} in {text[:300]!r}"
    assert not SERVER_PATH.search(text), f"a path on the server in {text[:300]!r}"
    assert not "a" <= text[0] <= "z" and text[-1] in ".!?…)`'\"", f"not a sentence: {text[:300]!r}"
    assert len(re.findall(r"[^\W\d_]{2,}", text)) >= 3, f"not a sentence: {text[:300]!r}"


def with_files(value, folder: str):
    """``value`` with every ``Upload`` written into ``folder`` and replaced by ``handle_file``."""
    if isinstance(value, Upload):
        path = tempfile.NamedTemporaryFile(dir=folder, suffix=value.suffix, delete=False).name
        with open(path, "wb") as file:
            file.write(value.content)
        return handle_file(path)
    if isinstance(value, dict):
        return {k: with_files(v, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(with_files(v, folder) for v in value)
    return value


def json_safe(args) -> bool:
    try:
        json.dumps(args, allow_nan=False)
        return True
    except ValueError:
        return False


def raw_predict(server_url: str, api_name: str, args: list):
    """Call an endpoint over plain HTTP, for arguments gradio_client will not send (NaN and infinity are not JSON)."""
    base = f"{server_url.rstrip('/')}/gradio_api"
    with httpx.Client(timeout=120) as http:

        def uploaded(value):
            if isinstance(value, dict) and value.get("meta") == {"_type": "gradio.FileData"}:
                name = value["path"].rsplit("/", 1)[-1]
                with open(value["path"], "rb") as file:
                    response = http.post(f"{base}/upload", files={"files": (name, file)})
                response.raise_for_status()
                return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}, "orig_name": name}
            if isinstance(value, dict):
                return {k: uploaded(v) for k, v in value.items()}
            if isinstance(value, list):
                return [uploaded(v) for v in value]
            return value

        body = json.dumps({"data": [uploaded(a) for a in args]}, allow_nan=True)
        response = http.post(f"{base}/call{api_name}", content=body, headers={"content-type": "application/json"})
        response.raise_for_status()
        kind = None
        with http.stream("GET", f"{base}/call{api_name}/{response.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    data = json.loads(line[5:])
                    if kind == "complete":
                        return data
                    message = data.get("error") if isinstance(data, dict) else data
                    raise AppError(message or "The upstream Gradio app has raised an exception (no message).")
    raise AssertionError(f"{api_name}: the event stream ended without an answer")


def call(client: Client, server_url: str, api_name: str, args: tuple):
    with tempfile.TemporaryDirectory(prefix="superpos-fuzz-") as folder:
        sent = [with_files(a, folder) for a in args]
        if json_safe(sent):
            return client.predict(*sent, api_name=api_name)
        return raw_predict(server_url, api_name, sent)


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


def test_every_public_endpoint_is_fuzzed(client):
    """A new endpoint cannot be forgotten: it needs a strategy here, with one per parameter."""
    api = client.view_api(print_info=False, return_format="dict")
    endpoints = api["named_endpoints"]
    missing, stale = sorted(set(endpoints) - set(FUZZ)), sorted(set(FUZZ) - set(endpoints))
    assert not missing and not stale, (
        f"endpoints without a fuzz strategy: {missing}; strategies for no endpoint: {stale}"
    )
    assert {name: len(info["parameters"]) for name, info in endpoints.items()} == {
        name: len(fuzz.baseline) for name, fuzz in FUZZ.items()
    }
    assert not api["unnamed_endpoints"]


@pytest.mark.parametrize("api_name", list(FUZZ))
def test_every_input_is_answered_or_refused_clearly(api_name, client, server_url, capfd):
    fuzz = FUZZ[api_name]

    def answered_or_refused_clearly(args):
        assert len(args) == len(fuzz.baseline)
        try:
            outputs, refusal = call(client, server_url, api_name, args), None
        except AppError as error:
            refusal = str(error)
        if refusal is None:  # (judged outside the except: a failure then shows without the refusal's whole traceback)
            fuzz.answered(outputs[0])
        else:
            assert_clear(refusal)

    # derandomize=True: the same examples on every run, so that CI's failures reproduce anywhere.
    # deadline=None: a call may take seconds (the language model loads on first use); that is no failure.
    run = given(args=fuzz.arguments)(answered_or_refused_clearly)
    for args in fuzz.explicit():
        run = example(args=args)(run)
    run = settings(
        max_examples=fuzz.examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )(run)
    run()
    fuzz.next_user(client)  # and the next user is served as usual
    printed = capfd.readouterr().err
    assert "Traceback" not in printed, f"the server printed a traceback while {api_name} was fuzzed:\n{printed[-3000:]}"
