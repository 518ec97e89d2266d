"""Concepts in a language model's hidden states (the course's chapter 4), for the language-model tab.

    from superpos_core import concepts, lm
    loaded = lm.load("smollm2-135m-offline")
    analysis = concepts.analyse_concepts(loaded, concepts.CONCEPTS, concepts.default_sentences(), layer=10)
    analysis.by_label()            # (concepts, labels): raw Pearson correlation, as the course computes it
    analysis.by_label(centred=True)  # the same after removing what every concept / every sentence shares
    analysis.pca()                 # the sentences in their two main directions, and the variance each holds
    analysis.summary()             # the /lm_concepts API's JSON

A *concept* is a list of words (``positive: good, great, happy``). Its vector at a layer is the mean,
over its words, of the hidden state the model gives the word (one token, read after a space, as it
would appear mid-sentence). A *sentence*'s vector is the mean of its tokens' hidden states at the same
layer. The correlation of a concept with a sentence is Pearson's r between those two vectors, taken
across the d_model dimensions.

Text formats the learner edits (blank lines are skipped):

    positive: good, great, happy          one concept per line: name, colon, words separated by commas
    negative: I lost my keys again.       one sentence per line: label, colon, the sentence
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from superpos_core import lm

# Words every catalogue tokenizer keeps whole after a space (" good" is one token), so each word's
# vector is the model's own vector for it, not a mix of word pieces.
CONCEPTS: dict[str, list[str]] = {
    "positive": ["good", "great", "happy", "love", "wonderful", "excellent", "joy", "beautiful"],
    "negative": ["bad", "terrible", "sad", "hate", "awful", "horrible", "pain", "ugly"],
    "neutral": ["table", "chair", "paper", "window", "number", "street", "door", "metal"],
}

# Short sentences written for this app, eight per label. The neutral ones state plain facts.
SENTENCES: dict[str, list[str]] = {
    "positive": [
        "What a wonderful day this has been.",
        "I love spending the evening with my friends.",
        "The soup was delicious and the waiter was kind.",
        "She smiled and thanked everyone for the lovely gift.",
        "We won the match and the whole town cheered.",
        "This is the best book I have read all year.",
        "The garden looks beautiful in the spring sunshine.",
        "He was proud and happy with the result.",
    ],
    "negative": [
        "This was a terrible day from start to finish.",
        "I hate waiting for the bus in the cold rain.",
        "The soup was awful and the waiter was rude.",
        "She cried after hearing the sad news.",
        "We lost the match and everyone was angry.",
        "This is the worst film I have seen all year.",
        "The garden is dead and full of rubbish.",
        "He felt lonely, tired and afraid.",
    ],
    "neutral": [
        "The meeting starts at ten in the morning.",
        "The train leaves from platform four.",
        "The table is made of wood and has four legs.",
        "She put the keys in the top drawer.",
        "The report has twelve pages and two charts.",
        "Water boils at one hundred degrees Celsius.",
        "The street runs north from the river.",
        "He opened the window and sat down.",
    ],
}

MAX_INPUT_CHARS = 20_000  # per text box: far more than any list a learner types, and cheap to refuse
MAX_CONCEPTS = 8
MAX_WORDS = 32  # per concept
MAX_SENTENCES = 64
MAX_SENTENCE_TOKENS = 64  # per sentence: these are meant to be short, and a batch stays small
MAX_NAME_CHARS = 40  # a concept name or label has to fit on an axis and in a legend
TOKENS_PER_FORWARD = 1024  # rows × padded length of one batch: bounds the memory of all layers' hidden states


class ConceptInputError(ValueError):
    """Concept lists or labelled sentences the analysis cannot use; the message is meant for the learner."""


@dataclass(frozen=True)
class LabelledSentence:
    label: str
    text: str
    line: int = 0  # where it stood in the learner's text, for error messages (0: not from a text)


def default_sentences() -> list[LabelledSentence]:
    return [LabelledSentence(label, text) for label, texts in SENTENCES.items() for text in texts]


def format_concepts(concepts: Mapping[str, Sequence[str]]) -> str:
    """The text box's format: ``name: word, word`` on one line per concept."""
    return "\n".join(f"{name}: {', '.join(words)}" for name, words in concepts.items())


def format_sentences(sentences: Mapping[str, Sequence[str]]) -> str:
    """The text box's format: ``label: sentence`` on one line per sentence."""
    return "\n".join(f"{label}: {text}" for label, texts in sentences.items() for text in texts)


# --- the learner's text, checked -------------------------------------------------------------------


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _lines(text, what: str, example: str) -> list[tuple[int, str]]:
    """(line number, stripped line) for each non-blank line; control characters removed as ``lm.clean_text`` does."""
    if not isinstance(text, str):
        raise ConceptInputError(f"The {what} must be text; got {text!r:.60}.")
    if len(text) > MAX_INPUT_CHARS:
        raise ConceptInputError(
            f"The {what} are {len(text):,} characters long; at most {MAX_INPUT_CHARS:,} are accepted. Keep the lists short."
        )
    try:
        text, _ = lm.clean_text(text)
    except lm.TextInputError:
        raise ConceptInputError(f"The {what} are empty: write one per line, like `{example}`.") from None
    return [(number, line.strip()) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def _name(raw: str, number: int, kind: str, example: str) -> str:
    name = " ".join(raw.split())  # "very  positive" and "very positive" are one name
    if not name:
        raise ConceptInputError(f"Line {number} has no {kind} before the ':'. Write it like `{example}`.")
    if len(name) > MAX_NAME_CHARS:
        raise ConceptInputError(
            f"Line {number}: the {kind} {_short(name)!r} is longer than {MAX_NAME_CHARS} characters. Use a short name."
        )
    return name


def parse_concepts(text) -> dict[str, list[str]]:
    """``"positive: good, great\\nnegative: bad"`` -> ``{"positive": ["good", "great"], "negative": ["bad"]}``.

    Words repeated within a concept count once. Between 2 and ``MAX_CONCEPTS`` concepts: the
    analysis compares concepts, and its centred view needs at least two.

    Raises:
        ConceptInputError: empty or huge text, a line without ``name:``, a concept without words,
            a name used twice, too many concepts or words.
    """
    example = format_concepts({"positive": CONCEPTS["positive"][:3]})
    concepts: dict[str, list[str]] = {}
    for number, line in _lines(text, "concept word lists", example):
        raw_name, colon, raw_words = line.partition(":")
        if not colon:
            raise ConceptInputError(
                f"Line {number} ({_short(line)!r}) has no ':'. Write one concept per line, like `{example}`."
            )
        name = _name(raw_name, number, "concept name", example)
        if name in concepts:
            raise ConceptInputError(
                f"The concept {name!r} is listed twice (again on line {number}). Give each concept one line."
            )
        words = list(dict.fromkeys(word.strip() for word in raw_words.split(",") if word.strip()))
        if not words:
            raise ConceptInputError(
                f"The concept {name!r} (line {number}) has no words: list them after the ':', separated by commas."
            )
        if len(words) > MAX_WORDS:
            raise ConceptInputError(
                f"The concept {name!r} has {len(words)} words; at most {MAX_WORDS} are used. Keep the most typical ones."
            )
        concepts[name] = words
    if len(concepts) > MAX_CONCEPTS:
        raise ConceptInputError(f"There are {len(concepts)} concepts; at most {MAX_CONCEPTS} fit in one picture.")
    if len(concepts) < 2:
        raise ConceptInputError(
            f"Give at least two concepts, one per line (like `{example}`): the analysis compares concepts with each other."
        )
    return concepts


def parse_sentences(text) -> list[LabelledSentence]:
    """``"positive: What a day.\\nneutral: It is noon."`` -> labelled sentences, in order.

    Only the first ':' separates the label, so a sentence may hold colons ("It starts at 10:30.").
    At least 3 sentences under at least 2 labels, at most ``MAX_SENTENCES``.

    Raises:
        ConceptInputError: empty or huge text, a line without ``label:``, a label without a sentence,
            one label only, too few or too many sentences.
    """
    example = f"positive: {SENTENCES['positive'][0]}"
    sentences = []
    for number, line in _lines(text, "labelled sentences", example):
        raw_label, colon, sentence = line.partition(":")
        if not colon:
            raise ConceptInputError(
                f"Line {number} ({_short(line)!r}) has no label. Write one sentence per line, like `{example}`."
            )
        label = _name(raw_label, number, "label", example)
        sentence = sentence.strip()
        if not sentence:
            raise ConceptInputError(f"Line {number} has the label {label!r} but no sentence after the ':'.")
        sentences.append(LabelledSentence(label, sentence, number))
    if len(sentences) > MAX_SENTENCES:
        raise ConceptInputError(f"There are {len(sentences)} sentences; at most {MAX_SENTENCES} are read at once.")
    labels = list(dict.fromkeys(s.label for s in sentences))
    if len(labels) < 2:
        raise ConceptInputError(
            f"Every sentence has the label {labels[0]!r}: give sentences under at least two labels, so they can be compared."
        )
    if len(sentences) < 3:
        raise ConceptInputError(
            f"There are only {len(sentences)} sentences: give at least three, so the sentences' main directions can be found."
        )
    return sentences


# --- the model's vectors ---------------------------------------------------------------------------------


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r between every row of ``a`` (A, d) and every row of ``b`` (B, d), across the d columns.

    Returns (A, B). A row with no variation correlates 0 with everything (its r is undefined).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))  # (A, B)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a @ b.T) / norms
    return np.where(norms > 0, r, 0.0)


def pca_2d(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``matrix`` (N, d) projected on its two principal components.

    Returns ``(coordinates (N, 2), explained (2,))``: explained is each component's share of the
    total variance. Signs are fixed (each component's largest loading is positive) so the same data
    always gives the same picture; with fewer than two directions of variation the missing
    coordinates and shares are 0.
    """
    centred = torch.as_tensor(np.asarray(matrix, np.float64))
    centred = centred - centred.mean(dim=0)
    # torch's SVD, not numpy's: numpy's OpenBLAS starts a thread per core, and on a busy server those
    # threads wait on each other; torch keeps to torch.set_num_threads.
    u, s, vt = (part.numpy() for part in torch.linalg.svd(centred, full_matrices=False))  # u (N, k), s (k,), vt (k, d)
    k = min(2, len(s))
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])  # (k,)
    coordinates = np.zeros((len(centred), 2))
    coordinates[:, :k] = u[:, :k] * s[:k] * signs
    total = float(np.sum(s**2))
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return coordinates, explained


def _mean_hidden_states(loaded: lm.LoadedLM, sequences: list[list[int]], layer: int) -> np.ndarray:
    """(B, d_model) each sequence's mean hidden state at ``layer`` over its tokens after the first.

    Every sequence starts with the same prefix token, left out of the mean. Models put huge values on
    the first position (an "attention sink"); read alone, a word would *be* that first token, and from
    the middle layers on every word and sentence would look alike. The prefix takes that role instead.
    Sequences are right-padded into batches; the attention mask hides the padding from real tokens.
    """
    means = []
    step = max(1, TOKENS_PER_FORWARD // max(map(len, sequences)))
    extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
    for start in range(0, len(sequences), step):
        batch = sequences[start : start + step]
        ids = torch.full((len(batch), max(map(len, batch))), batch[0][0], dtype=torch.long)  # (B, T)
        mask = torch.zeros_like(ids)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        with torch.inference_mode():
            out = loaded.model(
                input_ids=ids.to(loaded.device),
                attention_mask=mask.to(loaded.device),
                output_hidden_states=True,
                **extra,
            )
        hidden = out.hidden_states[layer].to("cpu", torch.float64)  # (B, T, d_model)
        keep = mask.to(torch.float64)
        keep[:, 0] = 0  # the prefix token
        keep = keep.unsqueeze(-1)  # (B, T, 1)
        means.append((hidden * keep).sum(dim=1) / keep.sum(dim=1))  # (B, d_model)
    return torch.cat(means).numpy()


def _word_token_ids(loaded: lm.LoadedLM, concepts: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each word's single token, read after a space as mid-sentence; every split word is named in one error."""
    tokenizer = loaded.tokenizer
    ids, split = {}, []
    for words in concepts.values():
        for word in words:
            if word in ids:
                continue
            pieces = tokenizer(" " + word, add_special_tokens=False).input_ids
            if len(pieces) == 1:
                ids[word] = int(pieces[0])
            else:
                spelled = "|".join(lm.token_label(lm.readable_token(tokenizer, int(i))) for i in pieces)
                split.append(f"“{_short(word, 24)}” ({len(pieces)} tokens: {spelled})")
    if split:
        shown = "; ".join(split[:6]) + (f"; and {len(split) - 6} more" if len(split) > 6 else "")
        raise ConceptInputError(
            f"{loaded.title} splits {'this word' if len(split) == 1 else f'these {len(split)} words'} into pieces: {shown}. "
            "A concept word must be a single token, so that its vector is the model's own vector for it. Use another word, or remove it."
        )
    return ids


def _sentence_token_ids(loaded: lm.LoadedLM, sentences: Sequence[LabelledSentence]) -> list[list[int]]:
    limit = min(MAX_SENTENCE_TOKENS, loaded.context_length - 1)  # one position goes to the prefix
    token_ids = []
    for sentence in sentences:
        ids = loaded.tokenizer(sentence.text, add_special_tokens=False).input_ids
        where = f"Line {sentence.line}" if sentence.line else f"The sentence {_short(sentence.text)!r}"
        if not ids:
            raise ConceptInputError(f"{where}: the sentence has no tokens for {loaded.title}.")
        if len(ids) > limit:
            raise ConceptInputError(
                f"{where}: the sentence is {len(ids)} tokens long; at most {limit} are read. Shorten it or split it in two."
            )
        token_ids.append([int(i) for i in ids])
    return token_ids


@dataclass
class ConceptAnalysis:
    """Concept vectors and sentence vectors at one layer, and what the tab shows of them."""

    model: str
    layer: int
    concepts: dict[str, list[str]]  # name -> words, in the learner's order
    sentences: list[LabelledSentence]
    concept_vectors: np.ndarray  # (C, d_model) each concept's mean word vector at the layer
    sentence_vectors: np.ndarray  # (S, d_model) each sentence's mean token vector at the layer
    notes: list[str] = field(default_factory=list)

    @property
    def concept_names(self) -> list[str]:
        return list(self.concepts)

    @property
    def labels(self) -> list[str]:
        """The sentences' labels, in order of first appearance."""
        return list(dict.fromkeys(s.label for s in self.sentences))

    @property
    def d_model(self) -> int:
        return int(self.concept_vectors.shape[1])

    def correlations(self, centred: bool = False) -> np.ndarray:
        """(C, S) Pearson's r of each concept vector with each sentence vector.

        Raw (the course's way), every hidden state shares a large common part, so every r is high.
        Centred, the mean concept vector is taken from each concept and the mean sentence vector from
        each sentence first: what is left is what sets one concept (one sentence) apart from the others.
        """
        concepts, sentences = self.concept_vectors, self.sentence_vectors
        if centred:
            concepts = concepts - concepts.mean(axis=0)
            sentences = sentences - sentences.mean(axis=0)
        return pearson(concepts, sentences)

    def by_label(self, centred: bool = False) -> np.ndarray:
        """(C, L) each concept's correlation averaged over the sentences of each label (``labels`` order)."""
        r = self.correlations(centred)
        labels = np.array([s.label for s in self.sentences])
        return np.stack([r[:, labels == label].mean(axis=1) for label in self.labels], axis=1)

    def closest_labels(self, centred: bool = True) -> dict[str, str]:
        """For each concept, the label whose sentences it correlates with most."""
        table = self.by_label(centred)
        return {name: self.labels[int(np.argmax(row))] for name, row in zip(self.concept_names, table)}

    def pca(self) -> tuple[np.ndarray, np.ndarray]:
        """The sentence vectors' two principal components: ``(coordinates (S, 2), explained (2,))``."""
        return pca_2d(self.sentence_vectors)

    def summary(self) -> dict:
        """JSON-ready: the /lm_concepts API's contract. Keys and types are pinned by a test.

        ``correlations[concept][label]`` is the raw r averaged over that label's sentences,
        ``centred_correlations`` the same after centring (see ``correlations``), and
        ``pca_explained`` the share of the sentences' variance along the first two principal components.
        """

        def table(values: np.ndarray) -> dict[str, dict[str, float]]:
            return {
                name: {label: round(float(v), 4) for label, v in zip(self.labels, row)}
                for name, row in zip(self.concept_names, values)
            }

        return {
            "model": self.model,
            "layer": int(self.layer),
            "d_model": self.d_model,
            "concepts": self.concept_names,
            "labels": self.labels,
            "sentences": len(self.sentences),
            "correlations": table(self.by_label()),
            "centred_correlations": table(self.by_label(centred=True)),
            "pca_explained": [round(float(v), 4) for v in self.pca()[1]],
        }


def analyse_concepts(
    loaded: lm.LoadedLM, concepts: Mapping[str, Sequence[str]], sentences: Sequence[LabelledSentence], layer: int
) -> ConceptAnalysis:
    """Concept and sentence vectors at ``layer``: two batched passes through the model.

    Args:
        loaded: from ``lm.load``.
        concepts: name -> words (``parse_concepts`` gives one from the learner's text); each word must
            be a single token after a space.
        sentences: labelled sentences (``parse_sentences``), each at most ``MAX_SENTENCE_TOKENS`` tokens.
        layer: 0 (embeddings) to ``loaded.n_layers - 1``.

    Raises:
        ConceptInputError: a word the tokenizer splits, a sentence too long or with no tokens, an empty list.
        LayerError: ``layer`` outside 0..n_layers-1.
    """
    layer = lm.check_layer(layer, loaded.n_layers)
    concepts = {name: list(words) for name, words in concepts.items()}
    if not concepts or not all(concepts.values()):
        raise ConceptInputError("Every concept needs at least one word.")
    if not sentences:
        raise ConceptInputError("There are no sentences to compare the concepts with.")
    # 1) tokens: all checked before the model runs, so one message lists every problem word
    word_ids = _word_token_ids(loaded, concepts)
    sentence_ids = _sentence_token_ids(loaded, sentences)
    prefix = lm.any_token_id(loaded.tokenizer)  # BOS (or end-of-text): where a document starts
    # 2) every distinct word in one batch of two-token sequences, then the sentences
    words = list(word_ids)
    word_vectors = _mean_hidden_states(loaded, [[prefix, word_ids[w]] for w in words], layer)  # (W, d_model)
    row = {word: i for i, word in enumerate(words)}
    concept_vectors = np.stack(
        [word_vectors[[row[w] for w in ws]].mean(axis=0) for ws in concepts.values()]
    )  # (C, d_model)
    sentence_vectors = _mean_hidden_states(loaded, [[prefix, *ids] for ids in sentence_ids], layer)  # (S, d_model)
    notes = []
    if len(concepts) == 2:
        # Centring takes the two concepts' mean from each, leaving c₁ − m = −(c₂ − m): one direction and its opposite.
        notes.append(
            "With two concepts, centring leaves each the exact opposite of the other, so the right-hand bars are mirror images "
            "(one concept's r is minus the other's): one fact, not two. Add a third concept, such as the default neutral words, "
            "for bars that can differ."
        )
    if layer == 0:
        notes.append(
            "Layer 0 is the token embeddings, before any block has mixed the words of a sentence: a sentence that contains a "
            "concept word shares that word's vector exactly, so correlations here mostly count shared words."
        )
    return ConceptAnalysis(loaded.name, layer, concepts, list(sentences), concept_vectors, sentence_vectors, notes)
