"""Feature read-outs: what a pretrained SAE reads for a text, and which of its features fire where.

``sae_input`` feeds an SAE a text as its training text was read (after the BOS, in windows of its
context size, centred if the model's writing weights were centred); ``read_features`` encodes it and
keeps, for the whole text and for every token, the strongest features (``FeatureReading``);
``top_features`` ranks any table of feature activations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from superpos_core import lm
from superpos_core.sae.checks import SAEInputError, whole_number
from superpos_core.sae.pretrained import PretrainedSAE

_RESIDUAL = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")
WINDOWS_PER_PASS = 16  # windows read in one batched forward pass: bounds memory for very long token lists


def hidden_state_index(hook_name: str, n_layers: int) -> int:
    """The Hugging Face hidden state a TransformerLens residual-stream hook is, in a model with ``n_layers`` of them.

    ``blocks.L.hook_resid_pre`` is hidden state L (0 is the embeddings) and ``blocks.L.hook_resid_post``
    is L + 1, except after the last block: Hugging Face applies the final norm to its last hidden state.

    Raises ``SAEInputError`` for any other hook, or a block the model does not have.
    """
    match = _RESIDUAL.match(hook_name)
    if match is None:
        raise SAEInputError(
            f"This SAE reads {hook_name!r}; only SAEs of the residual stream (blocks.L.hook_resid_pre or hook_resid_post) can be fed here."
        )
    index = int(match.group(1)) + (match.group(2) == "post")
    if index > n_layers - 2:  # hidden states 0 .. n_layers - 2 are the residual stream as it is
        raise SAEInputError(
            f"This SAE reads {hook_name!r}, which this model's hidden states do not hold: it has {n_layers - 1} blocks, and its last "
            "hidden state has the final norm applied."
        )
    return index


@dataclass(frozen=True)
class SAEInput:
    """What a pretrained SAE is fed for one text (``sae_input``), and how it was read."""

    activations: torch.Tensor  # (T, d_in) float32 on the CPU, one row per token of the text
    hidden_state: int  # the hidden state the SAE's hook is (Hugging Face numbering: 0 = embeddings)
    bos: int | None  # the token each window starts with, None if the SAE was trained without one
    window: int  # positions per window, BOS included: the SAE's context_size, or the model's context if shorter or unrecorded
    windows: int  # how many windows the text took
    centred: bool  # each row had its mean over d_in taken away (the SAE was trained on centred writing weights)
    reused: bool  # taken from the analysis given, without a forward pass of its own


def sae_input(
    model_sae: PretrainedSAE, loaded: lm.LoadedLM, token_ids: Sequence[int], analysis: lm.TextAnalysis | None = None
) -> SAEInput:
    """The activations ``model_sae`` should encode for a text's tokens, read as its training text was.

    SAELens trains an SAE on TransformerLens activations of fixed-length windows of text, and its
    features mean what they mean only on such inputs. Three of the SAE's settings say how:

    1. ``prepend_bos``: every window starts with the model's BOS (``lm.bos_token_id``) at position 0,
       as SAELens puts one at the start of each training window; its row is not returned.
    2. ``context_size``: windows of that many positions, BOS included. A longer text is read in
       consecutive windows, each from position 0 after its own BOS, as SAELens cut its training text;
       positions the SAE never saw in training are never fed to it. (Unrecorded: the model's context.)
    3. ``center_writing_weights``: TransformerLens centred every weight that writes to the residual
       stream (embeddings, attention and MLP outputs) over d_model, so each write, and so the stream,
       has zero mean over d_model. The stream is read only through LayerNorm, which takes the mean away
       anyway, so nothing else changes: the centred stream is the Hugging Face hidden state minus its
       own mean over d_model, position by position. (Exact for LayerNorm models such as GPT-2; models
       with RMSNorm could not have had their weights centred.)

    Args:
        model_sae: a pretrained SAE of the residual stream (see ``hidden_state_index``).
        loaded: the model it reads, from ``lm.load``; its width must be the SAE's d_in.
        token_ids: the text's tokens, without a BOS (as ``TextAnalysis.token_ids``).
        analysis: the analysis of these tokens, if there is one. Its hidden states are reused, saving a
            forward pass, when they are what the SAE reads: the text read after the same BOS, in one window.

    Raises:
        SAEInputError: no tokens, a hook or width the model does not have, or an SAE trained after a BOS
            read with a model that has none.
    """
    ids = [int(t) for t in token_ids]
    if not ids:
        raise SAEInputError("There are no tokens for the SAE to read: type at least one word.")
    if loaded.d_model != model_sae.d_in:
        raise SAEInputError(
            f"This SAE reads {model_sae.d_in}-dimensional activations, and {loaded.title}'s are {loaded.d_model}-dimensional: it belongs to another model."
        )
    index = hidden_state_index(model_sae.hook_name, loaded.n_layers)
    bos = lm.bos_token_id(loaded.tokenizer) if model_sae.prepend_bos else None
    if model_sae.prepend_bos and bos is None:
        raise SAEInputError(
            f"This SAE was trained on text read after a BOS token, and {loaded.title}'s tokenizer has none."
        )
    prefix = [] if bos is None else [bos]
    window = min(model_sae.context_size or loaded.context_length, loaded.context_length)
    if window <= len(prefix):
        raise SAEInputError(
            f"{loaded.title} reads {loaded.context_length} positions at a time: no room for text after the BOS."
        )
    step = window - len(prefix)  # text tokens per window
    chunks = [ids[start : start + step] for start in range(0, len(ids), step)]

    # 1) The analysis already read the text after the same BOS in one pass: those are the SAE's inputs.
    reused = (
        analysis is not None
        and len(chunks) == 1
        and analysis.model == loaded.name
        and analysis.token_ids == ids
        and analysis.bos_id == bos
        and analysis.n_layers == loaded.n_layers
    )
    if reused:
        hidden = analysis.hidden_states[index].clone()  # (T, d_model), a copy: the analysis is shared
    else:
        hidden = _read_windows(loaded, prefix, chunks, index)  # (T, d_model)
    # 2) TransformerLens' centred residual stream, from the uncentred one (see 3. above).
    if model_sae.center_writing_weights:
        hidden = hidden - hidden.mean(dim=-1, keepdim=True)
    return SAEInput(
        hidden.to("cpu", torch.float32).contiguous(),
        index,
        bos,
        window,
        len(chunks),
        model_sae.center_writing_weights,
        reused,
    )


def _read_windows(loaded: lm.LoadedLM, prefix: list[int], chunks: list[list[int]], index: int) -> torch.Tensor:
    """Hidden state ``index`` of ``prefix + chunk`` for every chunk, prefix rows dropped, end to end: (T, d_model).

    Equal-length windows go through the model together; only the last chunk can be shorter, and it is
    read on its own rather than padded, so no window's numbers depend on another's.
    """
    full, rest = (chunks, []) if len(chunks[-1]) == len(chunks[0]) else (chunks[:-1], chunks[-1:])
    groups = [full[i : i + WINDOWS_PER_PASS] for i in range(0, len(full), WINDOWS_PER_PASS)] + ([rest] if rest else [])
    extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
    rows = []
    for group in groups:
        input_ids = torch.tensor([prefix + chunk for chunk in group], device=loaded.device)  # (W, window)
        with torch.inference_mode():
            out = loaded.model(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True, **extra
            )
        hidden = out.hidden_states[index][:, len(prefix) :]  # (W, window - prefix, d_model)
        rows.append(hidden.reshape(-1, hidden.shape[-1]).to("cpu", torch.float32))  # (W · tokens, d_model)
    return torch.cat(rows)  # (T, d_model)


# --- which features fire ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureHit:
    """One feature among the strongest."""

    index: int  # the feature's number, as Neuronpedia numbers it
    activation: float  # its peak (or mean) over the text, or its value at the token asked about
    token: int  # the token position where it peaks (or the token asked about)


def token_position(token, tokens: int) -> int:
    """``token`` as a position in a text of ``tokens`` tokens (negative counts from the end, as in Python).

    Raises ``SAEInputError`` for a position outside the text, or for anything but a whole number.
    """
    if not isinstance(token, (int, np.integer)) or isinstance(token, bool) or not -tokens <= token < tokens:
        raise SAEInputError(
            f"Token position {token!r} is outside the text, which has {tokens} tokens (0 to {tokens - 1})."
        )
    return int(token) % tokens


def top_features(
    feature_acts: np.ndarray | torch.Tensor, k: int = 10, token: int | None = None, by: str = "max"
) -> list[FeatureHit]:
    """The k features that fire most, on the whole text or on one token, strongest first.

    Over the whole text features are ranked by their **maximum** over tokens by default: SAE
    features are sparse, so the interesting ones fire strongly on one or two tokens (a name, a
    closing bracket) and are 0 elsewhere. Ranking by the mean would bury those under the few
    dense features that fire a little on every token, and make a feature's rank depend on the
    length of the text. ``by="mean"`` is offered for comparison. Features that fire nowhere are
    never listed, so fewer than k may come back.

    Args:
        feature_acts: (T, d_sae) features of every token, e.g. ``sae.encode(acts)``.
        k: how many features at most.
        token: a position (negative counts from the end, as in Python): rank by that token's
            features only. None: rank over the whole text.
        by: "max" or "mean" over tokens, for the whole text.
    """
    acts = torch.as_tensor(feature_acts).detach()
    if acts.ndim != 2 or acts.shape[0] < 1:
        raise SAEInputError(
            f"Feature activations must have shape (tokens, features) with at least one token; got {tuple(acts.shape)}."
        )
    whole_number("The number of top features (k)", k, 1, None)
    if by not in ("max", "mean"):
        raise SAEInputError(f"Features can be ranked by 'max' or 'mean' over the tokens; got {by!r}.")
    acts = acts.to(torch.float32).cpu()
    T = acts.shape[0]
    if token is not None:
        token = token_position(token, T)
        scores = acts[token]  # (d_sae,)
    elif by == "max":
        scores = acts.amax(0)  # (d_sae,)
    else:
        scores = acts.mean(0)  # (d_sae,)
    values, indices = scores.topk(min(k, scores.numel()))  # (k,), (k,)
    # Where each chosen feature peaks, searched in its own column only: the arg-max of all d_sae
    # columns at once cost ten times the rest of the ranking (3.4 ms for 64 tokens × 24,576).
    positions = [token] * len(indices) if token is not None else acts[:, indices].argmax(0).tolist()
    return [
        FeatureHit(index=int(i), activation=float(v), token=position)
        for v, i, position in zip(values, indices, positions)
        if v > 0
    ]


@dataclass(frozen=True)
class FeatureReading:
    """What a pretrained SAE found in one text: its input, and its strongest features overall and per token."""

    fed: SAEInput  # what the SAE read: the text after the BOS, in windows, centred, as the SAE's settings say
    peaks: list[float]  # (T,) each token's strongest feature activation
    over_text: list[FeatureHit]  # the k strongest features over the whole text, by their peak
    per_token: list[list[FeatureHit]]  # (T,) each token's k strongest features, strongest first, zeros left out


def read_features(
    model_sae: PretrainedSAE,
    loaded: lm.LoadedLM,
    token_ids: Sequence[int],
    analysis: lm.TextAnalysis | None = None,
    k: int = 10,
) -> FeatureReading:
    """Encode a text with ``model_sae`` and keep its strongest features, for the text and for every token.

    The SAE is fed its own input (``sae_input``), not the analysis's hidden state: GPT-2 small's SAEs were
    trained on centred activations of 128-token windows that start with <|endoftext|>, and must be fed the
    same. Every token's top k is computed once here, so that showing any token's features later costs nothing.

    Args:
        model_sae: a pretrained SAE of the residual stream.
        loaded: the model it reads, from ``lm.load``.
        token_ids: the text's tokens, without a BOS.
        analysis: the analysis of these tokens, whose forward pass is reused when it is what the SAE reads.
        k: how many features to keep, for the text and per token.
    """
    fed = sae_input(model_sae, loaded, token_ids, analysis)
    with torch.inference_mode():
        codes = model_sae.encode(fed.activations)  # (T, d_sae), on the SAE's device
    return reading_of(fed, codes, k)


def reading_of(fed: SAEInput, codes: torch.Tensor, k: int = 10) -> FeatureReading:
    """The ``FeatureReading`` of an SAE's codes (T, d_sae) for its input ``fed``, keeping the k strongest features for
    the text and for each token (for a caller that needs the codes themselves too: they are not kept)."""
    whole_number("The number of top features (k)", k, 1, None)
    features = codes.cpu()
    values, indices = features.topk(min(k, features.shape[1]), dim=1)  # (T, k) each token's strongest
    per_token = [
        [FeatureHit(int(i), float(v), t) for v, i in zip(vs, ids) if v > 0]
        for t, (vs, ids) in enumerate(zip(values, indices))
    ]
    return FeatureReading(fed, features.amax(dim=1).tolist(), top_features(features, k=k), per_token)
