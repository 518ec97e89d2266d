"""Steering the offline SmolLM2 with a feature of the SAE trained here."""

import numpy as np
import pytest
import torch

from superpos_core import lm
from superpos_core.lm import features, steering
from superpos_core.lm.corpus_activations import blocks_of
from tests.helpers import forward_hooks, tiny_gpt2_release

slow = pytest.mark.slow  # the real SmolLM2 reads and writes text: not in the quick run (-m "not slow")

MODEL = "smollm2-135m-offline"
PROMPT = "Yesterday I went to the market and"
GROWING = (
    "baseline",
    "steered",
    "generated",
    "complete",
    "tokens",
)  # what differs between a stopped run and a shorter one
KING = 1189  # fires on "king" before a name ("saw king David"): its dashboard's top contexts


@pytest.fixture(scope="module")
def model():
    return lm.load(MODEL), features.feature_sae(MODEL)


@slow
def test_strength_zero_is_exactly_the_baseline(model):
    loaded, found = model
    result = steering.steer(found, loaded, PROMPT, KING, 0.0, tokens=8)
    assert result["steered"] == result["baseline"] and result["kl"] == 0 and result["gained"] == []
    assert result["feature_activation"]["steered"] == result["feature_activation"]["baseline"]
    assert result["complete"] and result["generated"] == 8 and result["added_norm"] == 0 < result["stream_norm"]


@slow
def test_turning_a_feature_up_moves_the_model_towards_what_it_promotes(model):
    loaded, found = model
    before = forward_hooks(loaded)
    result = steering.steer(found, loaded, PROMPT, KING, 3.0, tokens=6)
    assert forward_hooks(loaded) == before  # the hook is gone
    assert result["feature_activation"]["steered"] > result["feature_activation"]["baseline"] + 1
    assert result["kl"] > 0.05 and result["steered"] != result["baseline"]
    gained = {token for token, _ in result["gained"]}
    promoted = {token for token, _ in features.feature_dashboard(found, loaded.tokenizer, KING)["top_logits"]}
    assert gained & promoted  # what its direction promotes through the unembedding becomes likelier next
    assert all(dp > 0 for _, dp in result["gained"]) and all(dp < 0 for _, dp in result["lost"])  # Δp, signed
    down = steering.steer(found, loaded, "And it came to pass that the", KING, -3.0, tokens=1)
    assert down["feature_activation"]["steered"] <= down["feature_activation"]["baseline"]


@slow
def test_sampling_is_seeded_and_greedy_is_the_default(model):
    loaded, found = model
    sampled = [steering.steer(found, loaded, PROMPT, KING, 1.0, tokens=4, seed=5)["steered"] for _ in range(2)]
    assert sampled[0] == sampled[1]
    assert (
        steering.steer(found, loaded, PROMPT, KING, 0.0, tokens=4)["baseline"]
        == steering.steer(found, loaded, PROMPT, KING, 0.0, tokens=4)["baseline"]
    )


@slow
def test_the_summary_grows_token_by_token_and_stopping_or_failing_midway_leaves_no_hook(model):
    loaded, found = model
    before = forward_hooks(loaded)
    steps = steering.steer_steps(found, loaded, PROMPT, KING, 2.0, tokens=20)
    first = next(steps)
    assert first["generated"] == 0 and first["baseline"] == first["steered"] == "" and first["kl"] > 0
    assert forward_hooks(loaded) == before  # none between two steps: another user's forward may run there
    grown = [next(steps) for _ in range(3)]
    assert [g["generated"] for g in grown] == [1, 2, 3] and grown[-1]["steered"].startswith(grown[0]["steered"])
    assert not grown[-1]["complete"] and forward_hooks(loaded) == before
    steps.close()  # the learner pressed Stop
    assert forward_hooks(loaded) == before
    full = steering.steer(found, loaded, PROMPT, KING, 2.0, tokens=3)
    assert full["complete"] and full["steered"] == grown[-1]["steered"]  # greedy: the same tokens, stopped or not
    assert {k: v for k, v in full.items() if k not in GROWING} == {k: v for k, v in first.items() if k not in GROWING}

    calls = [0]

    def fail_on_the_third_forward(_module, _inputs, _output):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("cancelled")

    last = blocks_of(loaded.model, loaded.n_layers - 1)[-1]
    handle = last.register_forward_hook(fail_on_the_third_forward)
    try:
        with pytest.raises(RuntimeError, match="cancelled"):
            steering.steer(found, loaded, PROMPT, KING, 2.0, tokens=5)
    finally:
        handle.remove()
    assert forward_hooks(loaded) == before
    clean = lm.analyse_text(loaded, PROMPT, found.layer)
    again = lm.analyse_text(loaded, PROMPT, found.layer)
    torch.testing.assert_close(clean.hidden_states, again.hidden_states)


@slow
def test_a_forward_on_another_thread_is_not_steered(model):
    """The model is shared by a server's users: while one steers, another's forward reads the model as it is."""
    import threading

    loaded, found = model
    ids = steering.prompt_ids(loaded, PROMPT)
    plain = steering.Continuation(loaded, ids, found.layer, torch.zeros(loaded.d_model)).next_logits
    big = 50.0 * steering.direction(found, KING)
    seen = {}
    with steering.steering_hook(loaded, found.layer, big):
        here = steering.Continuation(loaded, ids, found.layer, torch.zeros(loaded.d_model)).next_logits
        other = threading.Thread(
            target=lambda: seen.update(
                logits=steering.Continuation(loaded, ids, found.layer, torch.zeros(loaded.d_model)).next_logits
            )
        )
        other.start()
        other.join()
    assert not torch.equal(here, plain)  # this thread's forward was steered
    torch.testing.assert_close(seen["logits"], plain)  # the other thread's was not


@slow
def test_bad_requests_are_refused_with_the_range(model):
    loaded, found = model
    for tokens in (0, steering.MAX_TOKENS + 1, 2.5, True):
        with pytest.raises(steering.SteeringError, match=f"from 1 to {steering.MAX_TOKENS}"):
            steering.steer(found, loaded, PROMPT, KING, 1.0, tokens=tokens)
    for strength in (float("nan"), float("inf"), "big"):
        with pytest.raises(steering.SteeringError, match="finite number"):
            steering.steer(found, loaded, PROMPT, KING, strength)
    with pytest.raises(steering.SteeringError, match="prompt is empty"):
        steering.steer(found, loaded, "   ", KING, 1.0)
    with pytest.raises(ValueError, match="features 0 to"):
        steering.steer(found, loaded, PROMPT, found.d_sae, 1.0)
    assert steering.typical_activation(found, KING) == pytest.approx(
        float(np.median(found.dashboards.arrays["top_values"][KING]))
    )


def test_a_pretrained_gpt2_sae_steers_its_centred_stream(tmp_path, monkeypatch):
    """GPT-2's pretrained SAEs read a centred stream: the direction added is centred too, the feature's activation is
    read as the SAE reads it, and strength 0 is the baseline. A tiny GPT-2 and an SAE in SAELens' format stand in."""
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path / "cache"))
    loaded, release, model_sae = tiny_gpt2_release(tmp_path)
    found = features.release_feature_sae(release, 1, loaded=loaded, model_sae=model_sae)
    fired = np.flatnonzero(found.dashboards.arrays["density"] > 0)
    feature = int(fired[np.argmax(found.dashboards.arrays["density"][fired])])
    before = forward_hooks(loaded)
    assert abs(float(steering.direction(found, feature).mean())) < 1e-6  # only what the SAE reads is changed
    zero = steering.steer(found, loaded, "the cat sat on", feature, 0.0, tokens=5)
    assert zero["steered"] == zero["baseline"] and zero["kl"] == 0 and zero["generated"] >= 1
    up = steering.steer(found, loaded, "the cat sat on", feature, 4.0, tokens=5)
    assert up["feature_activation"]["steered"] > up["feature_activation"]["baseline"] and up["kl"] > 0
    ids = steering.prompt_ids(loaded, "the cat sat on")
    assert ids[0] == loaded.tokenizer.eos_token_id  # GPT-2's documents start after its end-of-text token
    last = lm.analyse_text(loaded, "the cat sat on", 1).hidden_states[1][-1]  # the prompt's last token at layer 1
    expected = found.sae.encode((last - last.mean())[None].float())[0, feature]
    assert up["feature_activation"]["baseline"] == pytest.approx(float(expected), abs=1e-3)
    assert forward_hooks(loaded) == before
