"""Turn a feature up (or down) and watch the model change: steering with an SAE feature's decoder direction.

    from superpos_core import lm
    from superpos_core.lm import features, steering
    loaded = lm.load("smollm2-135m-offline"); found = features.feature_sae("smollm2-135m-offline")
    result = steering.steer(found, loaded, "The weather today is", feature=123, strength=4.0, tokens=32)
    result["baseline"], result["steered"], result["kl"], result["gained"][:3]

Steering adds ``strength × typical × W_dec[feature]`` to the residual stream at the SAE's layer (the output of the
block before it, where the SAE reads), at every position after the BOS, the prompt's and each generated token's:
as if the feature fired there at ``strength`` times its typical strong activation (``typical_activation``: the
median of its 20 strongest over the corpus). The BOS is left alone: it holds the attention sink, and the SAE never
read it. The decoder row is the feature's own contribution to the SAE's reconstruction (its rows are not unit
vectors: the L1 penalty is weighted by their norms), so strength 1 adds what the feature itself adds where it fires
typically strongly; the summary gives the added vector's norm beside the stream's.

The model is shared by every user of the app, so the hook is held for one forward at a time, changes only forwards
run on the thread that holds it, and is removed whatever happens (``steering_hook``): a generation stopped or
failed between two tokens leaves nothing behind. ``steer_steps`` yields the summary as the tokens come (the tab
streams them); ``steer`` returns the finished one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from superpos_core.lm.analysis import check_layer, tokens_to_read
from superpos_core.lm.corpus_activations import blocks_of
from superpos_core.lm.features import FeatureSAE
from superpos_core.lm.loading import LoadedLM
from superpos_core.lm.tokens import TextInputError, readable_token

MAX_TOKENS = 64  # new tokens generated at most, for the baseline and for the steered run each
SHOWN = 10  # tokens listed as gained and as lost


class SteeringError(ValueError):
    """A steering request that cannot be run; the message says why and what would work."""


def typical_activation(found: FeatureSAE, feature: int) -> float:
    """The feature's typical strong activation: the median of its strongest activations over the corpus (0 if it
    never fired there)."""
    values = found.dashboards.arrays["top_values"][found.dashboards.check(feature)]
    fired = values[values > 0]
    return float(np.median(fired)) if len(fired) else 0.0


@contextmanager
def steering_hook(
    loaded: LoadedLM, layer: int, added: torch.Tensor, skip_first: bool = False, seen: list | None = None
) -> Iterator[None]:
    """While inside, ``added`` (d_model,) is added to ``hidden_states[layer]`` at every position of each forward run on
    this thread (position 0, the BOS, left alone with ``skip_first``); with ``seen``, each forward's stream there
    (after the change) is appended to it. The hook is removed on leaving, however the block is left.

    The model is shared by every user of a server: a forward another thread runs meanwhile is left as it is, and
    ``Continuation`` holds the hook for one forward at a time, so none is left on the model between two tokens.
    """
    layer = check_layer(layer, loaded.n_layers)
    if layer == 0 or layer == loaded.n_layers - 1:
        raise SteeringError(
            f"Steering adds to the output of a block before the last: choose a layer from 1 to {loaded.n_layers - 2}."
        )
    block = blocks_of(loaded.model, loaded.n_layers - 1)[layer - 1]
    owner = threading.get_ident()

    def add(_module, _inputs, output):
        if threading.get_ident() != owner:
            return None  # another user's forward: unchanged
        hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d_model)
        change = added.to(hidden.device, hidden.dtype).expand_as(hidden).clone()
        if skip_first:
            change[:, 0] = 0  # the BOS keeps its own stream
        changed = hidden + change
        if seen is not None:
            seen.append(changed.detach())
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    handle = block.register_forward_hook(add)
    try:
        yield
    finally:
        handle.remove()


class Continuation:
    """One run of generation with ``added`` at the SAE's layer: the prompt read on construction (``next_logits``,
    the next-token logits after it; ``stream``, its last token at the layer), then one new token per ``step()``.

        run = Continuation(loaded, ids, layer=15, added=3.0 * typical * direction)
        while not run.finished and len(run.made) < 32:
            run.step()

    Greedy, or sampled at temperature 1 from ``seed``; the KV cache keeps each step to one token's forward. The hook
    is on only during each forward (``steering_hook``), so stopping between steps leaves nothing on the model.
    """

    def __init__(self, loaded: LoadedLM, ids: list[int], layer: int, added: torch.Tensor, seed: int | None = None):
        self.loaded, self.layer, self.added = loaded, layer, added
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        self.made: list[int] = []
        self.finished = False  # the end-of-text token was made
        seen: list[torch.Tensor] = []
        input_ids = torch.tensor([ids], device=loaded.device)  # (1, T)
        out = self._forward(input_ids, torch.ones_like(input_ids), None, seen, skip_first=True)
        self.stream = seen[0][0, -1].float().cpu()  # (d_model,)
        self.next_logits = out.logits[0, -1].float().cpu()  # (vocab,)
        self._logits, self._cache, self._length = self.next_logits, out.cache, len(ids)

    @torch.inference_mode()
    def _forward(self, input_ids, attention_mask, cache, seen=None, skip_first=False):
        with steering_hook(self.loaded, self.layer, self.added, skip_first, seen):
            return self.loaded.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True)

    def step(self) -> int:
        """The next token's id (appended to ``made``); after the end-of-text token, ``finished`` is set."""
        if self.finished:
            raise SteeringError("This continuation has ended: the model wrote its end-of-text token.")
        if self.made:  # the last token made is read now, not when it was made: the last one is never read in vain
            self._length += 1
            step = torch.tensor([[self.made[-1]]], device=self.loaded.device)  # (1, 1)
            mask = torch.ones(1, self._length, dtype=torch.long, device=self.loaded.device)
            out = self._forward(step, mask, self._cache)
            self._logits, self._cache = out.logits[0, -1].float().cpu(), out.cache
        if self.generator is None:
            token = int(self._logits.argmax())
        else:
            token = int(torch.multinomial(torch.softmax(self._logits, -1), 1, generator=self.generator))
        self.made.append(token)
        self.finished = token == self.loaded.tokenizer.eos_token_id
        return token


def _check(strength, tokens, seed) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or not np.isfinite(strength):
        raise SteeringError(f"The strength must be a finite number; got {strength!r}.")
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or not 1 <= tokens <= MAX_TOKENS:
        raise SteeringError(f"The number of tokens must be a whole number from 1 to {MAX_TOKENS}; got {tokens!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise SteeringError(
            f"The seed must be a whole number of 0 or more, or empty for greedy decoding; got {seed!r}."
        )


def prompt_ids(loaded: LoadedLM, prompt) -> list[int]:
    """The prompt's token ids as the model reads a document, led by its BOS (``SteeringError`` when it is empty)."""
    try:  # a prompt longer than the context is cut to it here, and then refused as too long by ``steer_steps``
        _text, _notes, prefix, ids = tokens_to_read(loaded, prompt, loaded.context_length)
    except TextInputError:
        raise SteeringError("The prompt is empty: type the start of a sentence for the model to continue.") from None
    return prefix + ids


def direction(found: FeatureSAE, feature: int) -> torch.Tensor:
    """The feature's decoder row (d_model,), as the stream holds it: centred where the SAE reads a centred stream
    (GPT-2's pretrained SAEs), so that it changes only what the SAE reads."""
    row = found.sae.W_dec[feature].detach().float().cpu()
    return row - row.mean() if found.sae.center_writing_weights else row


def _activation(found: FeatureSAE, stream: torch.Tensor, feature: int) -> float:
    """The feature's SAE activation on one token's stream (d_model,), read as the SAE reads it."""
    if found.sae.center_writing_weights:
        stream = stream - stream.mean()
    with torch.inference_mode():
        return float(found.sae.encode(stream[None].to(found.sae.W_dec.device, torch.float32))[0, feature])


def steer_steps(
    found: FeatureSAE,
    loaded: LoadedLM,
    prompt: str,
    feature,
    strength: float,
    tokens: int = 32,
    seed: int | None = None,
) -> Iterator[dict]:
    """The ``/lm_steer`` summary as it grows (see ``steer``): first with the next-token distributions and empty
    continuations, then once per new token of the two runs, side by side; ``"generated"`` counts the steps made,
    and the last summary has ``"complete": True``. Stop iterating at any point: nothing is left on the model."""
    feature = found.dashboards.check(feature)
    _check(strength, tokens, seed)
    ids = prompt_ids(loaded, prompt)
    if len(ids) + tokens > loaded.context_length:
        raise SteeringError(f"The prompt is too long: {loaded.title} reads {loaded.context_length} positions.")
    typical = typical_activation(found, feature)
    if typical == 0:
        raise SteeringError(f"Feature {feature} never fired on the corpus: it has no typical activation to steer by.")
    unit = direction(found, feature)
    seed = None if seed is None else int(seed)
    # 1) the prompt read twice, without and with the change: the next-token distributions and the feature's activation
    base = Continuation(loaded, ids, found.layer, 0.0 * unit, seed)
    steered = Continuation(loaded, ids, found.layer, float(strength) * typical * unit, seed)
    before, after = torch.log_softmax(base.next_logits, -1), torch.log_softmax(steered.next_logits, -1)
    kl = float((after.exp() * (after - before)).sum())
    delta = after.exp() - before.exp()  # (vocab,)
    up, down = delta.topk(SHOWN), (-delta).topk(SHOWN)
    summary = {
        "baseline": "",
        "steered": "",
        "kl": round(max(kl, 0.0), 6),
        "feature_activation": {
            "baseline": round(_activation(found, base.stream, feature), 4),
            "steered": round(_activation(found, steered.stream, feature), 4),
        },
        "gained": [[readable_token(loaded.tokenizer, int(i)), round(float(v), 6)] for v, i in zip(*up) if v > 0],
        "lost": [[readable_token(loaded.tokenizer, int(i)), round(-float(v), 6)] for v, i in zip(*down) if v > 0],
        "strength": float(strength),
        "typical_activation": round(typical, 4),
        "added_norm": round(float(steered.added.norm()), 4),
        "stream_norm": round(float(base.stream.norm()), 4),
        "tokens": int(tokens),
        "layer": found.layer,
        "feature": feature,
        "generated": 0,
        "complete": False,
    }
    yield dict(summary)
    # 2) both continuations, a token each per step, the one that ends first waiting for the other
    for done in range(1, int(tokens) + 1):
        for run in (base, steered):
            if not run.finished:
                run.step()
        summary.update(
            baseline=loaded.tokenizer.decode(base.made, skip_special_tokens=True),
            steered=loaded.tokenizer.decode(steered.made, skip_special_tokens=True),
            generated=done,
            complete=done == tokens or (base.finished and steered.finished),
        )
        yield dict(summary)
        if summary["complete"]:
            return


def steer(
    found: FeatureSAE,
    loaded: LoadedLM,
    prompt: str,
    feature,
    strength: float,
    tokens: int = 32,
    seed: int | None = None,
) -> dict:
    """The ``/lm_steer`` summary: the prompt continued with and without the feature turned up by ``strength``.

    Returns {"baseline", "steered" (the continuations' text), "kl" (KL(steered ‖ baseline) of the next-token
    distributions after the prompt, nats), "feature_activation": {"baseline", "steered"} (the feature on the
    prompt's last token at the SAE's layer, without and with the change), "gained" / "lost": [[token, Δp]] the
    next tokens whose probability rose and fell most, "strength", "typical_activation", "tokens" (the number
    asked for, after the cap), "added_norm" (the norm of the vector added), "stream_norm" (the norm of the prompt's
    last token's stream at the layer, unsteered), "layer", "feature", "generated" (tokens made per run),
    "complete"}.

    Args:
        strength: in units of the feature's typical strong activation; negative turns it down; 0 is the baseline.
        tokens: new tokens for each run, at most ``MAX_TOKENS``; a run stops early at the end-of-text token.
        seed: None for greedy decoding; a whole number to sample (temperature 1), the same seed for both runs.
    """
    *_, summary = steer_steps(found, loaded, prompt, feature, strength, tokens, seed)
    return summary
