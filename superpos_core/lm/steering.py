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
read it. The hook is removed whatever happens (``steering_hook``): the model is shared by every user of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from superpos_core.lm.analysis import check_layer
from superpos_core.lm.corpus_activations import blocks_of
from superpos_core.lm.features import FeatureSAE
from superpos_core.lm.loading import LoadedLM
from superpos_core.lm.tokens import TextInputError, bos_token_id, clean_text, readable_token

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
def steering_hook(loaded: LoadedLM, layer: int, added: torch.Tensor, seen: list | None = None) -> Iterator[None]:
    """While inside, ``added`` (d_model,) is added to ``hidden_states[layer]`` at every position but the first
    forward's position 0 (the BOS); with ``seen``, each forward's stream there (after the change) is appended to it.
    The hook is removed on leaving, however the block is left."""
    layer = check_layer(layer, loaded.n_layers)
    if layer == 0 or layer == loaded.n_layers - 1:
        raise SteeringError(
            f"Steering adds to the output of a block before the last: choose a layer from 1 to {loaded.n_layers - 2}."
        )
    block = blocks_of(loaded.model, loaded.n_layers - 1)[layer - 1]
    first = [True]

    def add(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output  # (B, T, d_model)
        change = added.to(hidden.device, hidden.dtype).expand_as(hidden).clone()
        if first[0]:
            change[:, 0] = 0  # the BOS keeps its own stream
            first[0] = False
        changed = hidden + change
        if seen is not None:
            seen.append(changed.detach())
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    handle = block.register_forward_hook(add)
    try:
        yield
    finally:
        handle.remove()


@torch.inference_mode()
def _generate(
    loaded: LoadedLM,
    ids: list[int],
    tokens: int,
    seed: int | None,
    on_token: Callable[[int], bool | None] | None,
) -> tuple[list[int], torch.Tensor]:
    """Up to ``tokens`` new token ids after ``ids`` (greedy, or sampled with ``seed``), stopping at the end-of-text
    token or when ``on_token(id)`` returns True; and the next-token logits after ``ids`` (vocab,)."""
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    input_ids = torch.tensor([ids], device=loaded.device)
    out = loaded.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True)
    first_logits = out.logits[0, -1].float().cpu()
    past, logits, made = out.cache, first_logits, []
    eos = loaded.tokenizer.eos_token_id
    length = len(ids)
    for _ in range(tokens):
        if generator is None:
            token = int(logits.argmax())
        else:
            token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        made.append(token)
        if token == eos or (on_token is not None and on_token(token)):
            break
        length += 1
        step = torch.tensor([[token]], device=loaded.device)
        out = loaded.model(
            input_ids=step,
            attention_mask=torch.ones(1, length, dtype=torch.long, device=loaded.device),
            cache=past,
            use_cache=True,
        )
        past, logits = out.cache, out.logits[0, -1].float().cpu()
    return made, first_logits


def steer(
    found: FeatureSAE,
    loaded: LoadedLM,
    prompt: str,
    feature,
    strength: float,
    tokens: int = 32,
    seed: int | None = None,
    on_token: Callable[[str, int], bool | None] | None = None,
) -> dict:
    """The ``/lm_steer`` summary: the prompt continued with and without the feature turned up by ``strength``.

    Returns {"baseline", "steered" (the continuations' text), "kl" (KL(steered ‖ baseline) of the next-token
    distributions after the prompt, nats), "feature_activation": {"baseline", "steered"} (the feature on the
    prompt's last token at the SAE's layer, without and with the change), "gained" / "lost": [[token, Δp]] the
    next tokens whose probability rose and fell most, "strength", "typical_activation", "tokens" (the number
    asked for, after the cap), "layer", "feature"}.

    Args:
        strength: in units of the feature's typical strong activation; negative turns it down; 0 is the baseline.
        tokens: new tokens for each run, at most ``MAX_TOKENS``.
        seed: None for greedy decoding; a whole number to sample (temperature 1), the same seed for both runs.
        on_token: called as ``on_token(which, token_id)`` ("baseline" or "steered") for every new token; it returns
            True to stop that run there.
    """
    feature = found.dashboards.check(feature)
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or not np.isfinite(strength):
        raise SteeringError(f"The strength must be a finite number; got {strength!r}.")
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or not 1 <= tokens <= MAX_TOKENS:
        raise SteeringError(f"The number of tokens must be a whole number from 1 to {MAX_TOKENS}; got {tokens!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise SteeringError(
            f"The seed must be a whole number of 0 or more, or empty for greedy decoding; got {seed!r}."
        )
    try:
        text, _notes = clean_text(prompt) if isinstance(prompt, str) else ("", [])
    except TextInputError:
        text = ""
    if not text.strip():
        raise SteeringError("The prompt is empty: type the start of a sentence for the model to continue.")
    bos = bos_token_id(loaded.tokenizer)
    ids = ([] if bos is None else [bos]) + loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) + tokens > loaded.context_length:
        raise SteeringError(f"The prompt is too long: {loaded.title} reads {loaded.context_length} positions.")
    typical = typical_activation(found, feature)
    if typical == 0:
        raise SteeringError(f"Feature {feature} never fired on the corpus: it has no typical activation to steer by.")
    direction = found.sae.W_dec[feature].detach().float().cpu()  # (d_model,)
    runs = {}
    for which, scale in (("baseline", 0.0), ("steered", float(strength) * typical)):
        seen: list[torch.Tensor] = []
        stop = None if on_token is None else (lambda token, which=which: on_token(which, token))
        with steering_hook(loaded, found.layer, scale * direction, seen):
            made, logits = _generate(loaded, ids, int(tokens), None if seed is None else int(seed), stop)
        last = seen[0][0, -1]  # (d_model,) the prompt's last token, as the SAE's layer holds it
        with torch.inference_mode():
            activation = float(found.sae.encode(last[None].float())[0, feature])
        runs[which] = (made, torch.log_softmax(logits, -1), activation)
    base, steered = runs["baseline"][1], runs["steered"][1]
    kl = float((steered.exp() * (steered - base)).sum())
    delta = steered.exp() - base.exp()  # (vocab,)
    up, down = delta.topk(SHOWN), (-delta).topk(SHOWN)

    def continuation(made: list[int]) -> str:
        return loaded.tokenizer.decode(made, skip_special_tokens=True)

    return {
        "baseline": continuation(runs["baseline"][0]),
        "steered": continuation(runs["steered"][0]),
        "kl": round(max(kl, 0.0), 6),
        "feature_activation": {"baseline": round(runs["baseline"][2], 4), "steered": round(runs["steered"][2], 4)},
        "gained": [[readable_token(loaded.tokenizer, int(i)), round(float(v), 6)] for v, i in zip(*up) if v > 0],
        "lost": [[readable_token(loaded.tokenizer, int(i)), round(-float(v), 6)] for v, i in zip(*down) if v > 0],
        "strength": float(strength),
        "typical_activation": round(typical, 4),
        "tokens": int(tokens),
        "layer": found.layer,
        "feature": feature,
    }
