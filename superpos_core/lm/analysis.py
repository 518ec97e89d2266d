"""One forward pass over a text, every layer kept: ``analyse_text`` and the ``TextAnalysis`` the tab shows.

    from superpos_core import lm
    analysis = lm.analyse_text(lm.load("gpt2"), "It was the best of times.", layer=6)   # one forward pass
    analysis.tokens, analysis.activations.shape, analysis.effective_rank(), analysis.summary()
    analysis.at_layer(3).ranks()                                                        # no second pass

Layers are numbered as Hugging Face's ``hidden_states`` are: 0 is the embedding output (what the first
block reads), ``i`` is the output of block ``i``, and the last one has the model's final norm applied
(transformers applies it there for every language model). A model with 12 blocks has 13 layers here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from superpos_core.lm.loading import LoadedLM
from superpos_core.lm.tokens import (
    CONTINUED,
    MAX_TOKENS,
    bos_token_id,
    clean_text,
    readable_token,
    shown_tokens,
    token_label,
)
from superpos_core.rank import DEFAULT_THRESHOLD, effective_rank, rank_to_reach, singular_values_from_gram

TOP_NEXT = 5  # the likeliest next tokens shown after the text


class LayerError(ValueError):
    """A layer number outside the model's range; the message names the valid range."""


def check_layer(layer, n_layers: int) -> int:
    """``layer`` as an int, or ``LayerError`` naming the valid range 0..n_layers-1."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < n_layers:
        raise LayerError(
            f"Layer {layer!r} does not exist: choose a layer from 0 (the embeddings) to {n_layers - 1} "
            f"(after the last block)."
        )
    return int(layer)


# --- one forward pass, every layer ----------------------------------------------------------------------


def most_variable_dimensions(activations: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """The ``k`` dimensions whose activation varies most across tokens, most variable first.

    Args:
        activations: (T, d_model) one layer's activations.
        k: how many dimensions; more than d_model gives them all.

    Returns:
        (min(k, d_model),) int indices. Ties (one token: every variance is 0) keep the lower index first.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if isinstance(activations, torch.Tensor):
        activations = activations.detach().cpu().numpy()
    variance = np.asarray(activations, dtype=np.float64).var(axis=0)  # (d_model,)
    return np.argsort(-variance, kind="stable")[:k]


@dataclass
class TextAnalysis:
    """Everything the tab shows about one text, for every layer at once.

    Switching layer is ``analysis.at_layer(n)``: no second forward pass.
    """

    model: str
    layer: int
    text: str  # the text as analysed: cleaned, before any truncation to ``token_ids``
    token_ids: list[int]  # the text's own tokens, without the BOS put before them
    tokens: list[str]  # readable, one per token, as the tokenizer split the text
    hidden_states: torch.Tensor  # (n_layers, T, d_model) float32 on the CPU, the text's T tokens (no BOS row)
    next_tokens: list[tuple[str, float]]  # the model's top-5 after the last token, with probabilities
    notes: list[str] = field(default_factory=list)
    bos_id: int | None = (
        None  # the document-start token read before the text (see ``analyse_text``), if the model has one
    )
    bos: str | None = None  # that token as text, e.g. "<|endoftext|>"
    threshold: float = DEFAULT_THRESHOLD
    shown: list[str] | None = (
        None  # one label per token, split characters put back together (``shown_tokens``); None: ``tokens``
    )
    _spectra: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # shared by at_layer copies

    @property
    def shown_or_tokens(self) -> list[str]:
        """The tokens as a list of the text shows them: an emoji whole on its first token, ``⋯`` on the rest (``shown_tokens``)."""
        return self.shown if self.shown is not None else self.tokens

    @property
    def labels(self) -> list[str]:
        """One label per token for pictures: ``shown_or_tokens`` with whitespace made visible."""
        return [token_label(token) for token in self.shown_or_tokens]

    @property
    def split_characters_note(self) -> str | None:
        """A sentence for the learner when some character took several tokens, else None."""
        if self.shown is None or CONTINUED not in "".join(self.shown):
            return None
        return (
            f"Some characters (emoji, for instance) took several tokens, each holding part of their bytes: a picture names the "
            f"character on its first token and marks the others {CONTINUED}. Each is still a row of its own."
        )

    @property
    def n_layers(self) -> int:
        """Hidden states per forward: embeddings + one per block."""
        return int(self.hidden_states.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.hidden_states.shape[2])

    @property
    def rank_bound(self) -> int:
        """No layer's rank can exceed min(T, d_model): with few tokens the *text* is the limit, not the model."""
        return min(len(self.tokens), self.d_model)

    @property
    def activations(self) -> np.ndarray:
        """(T, d_model) the chosen layer's activations, one row per token."""
        return self.hidden_states[self.layer].numpy()

    def at_layer(self, layer: int) -> TextAnalysis:
        """The same analysis viewed at another layer (raises ``LayerError`` when out of range)."""
        return replace(self, layer=check_layer(layer, self.n_layers), _spectra=self._spectra)

    def singular_values(self, layer: int | None = None) -> np.ndarray:
        """Singular values of the (T, d_model) token matrix at ``layer`` (default: the chosen one).

        Not centred, as in the course: the direction all tokens share counts as a dimension too.
        Computed on first use and remembered, so only the layers looked at cost an SVD.
        """
        layer = self.layer if layer is None else check_layer(layer, self.n_layers)
        if layer not in self._spectra:
            # From the smaller Gram matrix: its eigenvalues are the squared singular values, all the
            # effective rank needs (13 layers of 64 tokens × 768: 23 ms by SVD, ~2 ms this way).
            a = self.hidden_states[layer].double()  # (T, d_model)
            gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a  # (min(T, d), min(T, d))
            self._spectra[layer] = singular_values_from_gram(gram)  # (min(T, d_model),) largest first
        return self._spectra[layer]

    def effective_rank(self, layer: int | None = None) -> int:
        """The course's effective rank at ``layer``: singular values whose cumulative energy is below 99%."""
        return effective_rank(self.singular_values(layer), self.threshold)

    def dominant_token(self, layer: int | None = None) -> tuple[int, float]:
        """(index, share): the token whose vector holds the largest share of the layer's squared activations."""
        layer = self.layer if layer is None else check_layer(layer, self.n_layers)
        energy = self.hidden_states[layer].double().pow(2).sum(dim=1)  # (T,)
        index = int(energy.argmax())
        return index, float(energy[index] / energy.sum()) if energy.sum() > 0 else 0.0

    def layer_notes(self, layer: int | None = None) -> list[str]:
        """What the learner should know to read this layer's rank (today: one token swamping the rest)."""
        layer = self.layer if layer is None else check_layer(layer, self.n_layers)
        index, share = self.dominant_token(layer)
        if len(self.tokens) < 2 or share < 0.5:
            return []
        norms = self.hidden_states[layer].double().norm(dim=1)  # (T,)
        others = torch.cat([norms[:index], norms[index + 1 :]]).median()
        held = "over 99.9%" if share > 0.999 else f"{share:.1%}"  # never "100.0%": the others still count
        longer = f", about {float(norms[index] / others):,.0f}× longer than a typical token's" if others > 0 else ""
        # Language models park very large values on one token, usually the first (an "attention sink").
        # Uncentred, as in the course, that single direction can hold over 99% of the energy and the
        # effective rank falls to 0 or 1: a fact about that token, not about the other tokens' geometry.
        return [
            f"At layer {layer}, token {index} ({self.labels[index]}) holds {held} of the activations' energy"
            f"{longer}. Models often put huge values on one token, usually the first; the effective rank here mostly counts that one direction."
        ]

    def ranks(self) -> list[int]:
        """Effective rank at every layer, 0..n_layers-1 (each at most ``rank_bound``)."""
        return [self.effective_rank(layer) for layer in range(self.n_layers)]

    def most_variable_dimensions(self, k: int = 64) -> np.ndarray:
        """Columns for the heatmap's "most variable dimensions" view of the chosen layer."""
        return most_variable_dimensions(self.activations, k)

    def rank_to_reach(self, layer: int | None = None) -> int:
        """Singular values needed to reach 99% of the energy: the effective rank plus the one that crosses the line."""
        return rank_to_reach(self.singular_values(layer), self.threshold)

    @property
    def bos_note(self) -> str | None:
        """One sentence for the learner on the token read before the text, and why."""
        if self.bos is None:
            return None
        return (
            f"The model read {token_label(self.bos)} before your text, as it read the start of every document in training. Models park "
            "huge values on the first position (an *attention sink*); that token takes the role, and it is left out of everything shown "
            "here, so the ranks, heatmap and SAEs describe your text's own tokens."
        )

    def summary(self) -> dict:
        """JSON-ready: the /lm API's contract. Keys and types are pinned by a test.

        ``tokens`` are the text's own tokens; ``bos`` is the token read before them (None when the model has none).
        """
        return {
            "model": self.model,
            "layer": int(self.layer),
            "tokens": list(self.tokens),
            "bos": self.bos,
            "d_model": self.d_model,
            "effective_rank": self.effective_rank(),
            "rank_to_reach": self.rank_to_reach(),
            "next_tokens": [[token, float(p)] for token, p in self.next_tokens],
        }


def analyse_text(loaded: LoadedLM, text: str, layer: int, max_tokens: int = MAX_TOKENS) -> TextAnalysis:
    """Read ``text`` with the model once, keeping every layer's token activations.

    Args:
        loaded: from ``load``.
        text: any text: emoji, CJK, right-to-left scripts are read as the tokenizer reads them.
            Control characters are removed (see ``clean_text``).
        layer: which hidden state to view, 0 (embeddings) to ``loaded.n_layers - 1``.
        max_tokens: analyse at most this many tokens (and never more than the model's context).
            A longer text is cut, and the cut is reported in ``notes``.

    Raises:
        TextInputError: empty text, or not text.
        LayerError: ``layer`` outside 0..n_layers-1.
    """
    return analyse_texts(loaded, [text], layer, max_tokens)[0]


def analyse_texts(loaded: LoadedLM, texts: list[str], layer: int, max_tokens: int = MAX_TOKENS) -> list[TextAnalysis]:
    """``analyse_text`` for several texts in one forward pass (a server's concurrent requests, batched): each text
    right-padded to the longest, behind an attention mask. Right padding leaves every real token where a single
    run puts it, and a causal model's real tokens never look at the pads after them; the batch changes only how
    the matrix products round (a test bounds it). Raises as ``analyse_text`` does, for the first bad text."""
    layer = check_layer(layer, loaded.n_layers)
    read = [tokens_to_read(loaded, text, max_tokens) for text in texts]  # (text, notes, prefix, ids) each
    rows = [prefix + ids for _, _, prefix, ids in read]
    longest = max(map(len, rows))
    pad = rows[0][0]  # any real id: the pads are masked out
    input_ids = torch.tensor([row + [pad] * (longest - len(row)) for row in rows], device=loaded.device)  # (B, T)
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in rows], device=loaded.device)
    # The logits are taken from the last hidden state (the final norm applied) at each text's own last token, the
    # same way for one text as for many: the output layer is never asked for a (B, T, vocab) tensor.
    extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
    with torch.inference_mode():
        out = loaded.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, **extra)
        last = torch.stack([out.hidden_states[-1][b, len(row) - 1] for b, row in enumerate(rows)])  # (B, d_model)
        logits = loaded.model.get_output_embeddings()(last).float()  # (B, vocab)
    analyses = []
    for b, (text, notes, prefix, ids) in enumerate(read):
        hidden = torch.stack([h[b, len(prefix) : len(prefix) + len(ids)] for h in out.hidden_states]).to(
            "cpu", torch.float32
        )  # (n_layers, T, d_model)
        analyses.append(_analysis(loaded, layer, text, notes, prefix, ids, hidden, logits[b]))
    return analyses


def tokens_to_read(loaded: LoadedLM, text: str, max_tokens: int) -> tuple[str, list[str], list[int], list[int]]:
    """(the cleaned text, notes for the learner, the BOS prefix, the text's token ids as far as they are read): a text
    as the model reads a document (``TextInputError`` for an empty one)."""
    text, notes = clean_text(text)
    # The BOS is ours to add, never the tokenizer's: some tokenizers add one and some do not, and the text's tokens
    # must be the same either way. The whole text is tokenised, so the note can say how much was left out.
    ids = loaded.tokenizer(text, add_special_tokens=False).input_ids
    bos = bos_token_id(loaded.tokenizer)
    prefix = [] if bos is None else [bos]
    limit = min(loaded.context_length, max_tokens) - len(prefix)
    if len(ids) > limit:
        why = (
            f"{loaded.title} reads at most {loaded.context_length:,} tokens"
            if limit + len(prefix) == loaded.context_length
            else f"this app reads at most {max_tokens:,} tokens at once"
        )
        notes.append(
            f"The text is {len(ids):,} tokens and {why}: only the first {limit:,} were analysed, and the next-token guess follows token {limit:,}."
        )
        ids = ids[:limit]
    return text, notes, prefix, list(ids)


def _analysis(loaded, layer, text, notes, prefix, ids, hidden, logits) -> TextAnalysis:
    """One text's ``TextAnalysis`` from its forward pass: ``hidden`` (n_layers, T, d_model) without the BOS, and
    the next-token ``logits`` (vocab,) after its last token.

    Models put huge values on the first position (an attention sink): with no BOS the text's first token took that
    role and held over 99.9% of the energy from the middle layers on, so the rank counted that one token. The BOS
    takes the role here, as it did in training, and its row is dropped: everything shown is the text's own tokens.
    """
    # The next token: softmax over the whole output, but only ids the tokenizer can spell (Pythia's output layer is
    # padded past its vocabulary with ids that stand for nothing).
    probs = torch.softmax(logits, dim=-1)  # (vocab,)
    values, indices = probs[: len(loaded.tokenizer)].topk(TOP_NEXT)
    next_tokens = [(readable_token(loaded.tokenizer, int(i)), round(float(v), 6)) for v, i in zip(values, indices)]
    tokens = [readable_token(loaded.tokenizer, i) for i in ids]
    d_model = hidden.shape[2]
    if len(ids) < d_model:
        notes.append(
            f"With {len(ids)} token{'s' * (len(ids) != 1)} the activations form a {len(ids)} × {d_model} matrix, so no layer's effective "
            f"rank can exceed {len(ids)}: that limit comes from the text's length, not from the model."
        )
    bos = prefix[0] if prefix else None
    bos_text = None if bos is None else loaded.tokenizer.convert_ids_to_tokens(bos)
    shown = shown_tokens(loaded.tokenizer, ids, tokens)
    return TextAnalysis(
        loaded.name, layer, text, list(ids), tokens, hidden, next_tokens, notes, bos_id=bos, bos=bos_text, shown=shown
    )
