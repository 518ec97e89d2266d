"""Concepts against labelled sentences, on a tiny random GPT-2 built in the test (no network, no download)."""

import json

import numpy as np
import pytest
import torch

from superpos_core import concepts, lm
from tests import helpers
from tests.contracts import summary_keys

WORDS = {"warm": ["good", "joy"], "cold": ["bad", "pain", "sad"], "plain": ["table", "door"]}
SENTENCES = [
    concepts.LabelledSentence("warm", "What a good day."),
    concepts.LabelledSentence("warm", "Joy everywhere, all the time, for everyone here."),
    concepts.LabelledSentence("cold", "It was bad."),
    concepts.LabelledSentence("cold", "Pain and sadness filled the long, grey afternoon."),
    concepts.LabelledSentence("plain", "The door is on the left of the table."),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    words = [f" {w}" for ws in (*WORDS.values(), *concepts.CONCEPTS.values()) for w in ws]
    return lm.load(helpers.save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2-concepts"), words), allow_any=True)


def hidden_alone(loaded, ids, layer):
    """The hidden states of one sequence read on its own: no batch, no padding."""
    with torch.no_grad():
        out = loaded.model(torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer][0].double().numpy()  # (T, d_model)


# --- the learner's text --------------------------------------------------------------------------------


def test_the_default_lists_round_trip_through_their_text():
    assert concepts.parse_concepts(concepts.format_concepts(concepts.CONCEPTS)) == concepts.CONCEPTS
    parsed = concepts.parse_sentences(concepts.format_sentences(concepts.SENTENCES))
    assert [(s.label, s.text) for s in parsed] == [(s.label, s.text) for s in concepts.default_sentences()]
    assert [s.line for s in parsed] == list(range(1, len(parsed) + 1))
    assert {label: len(texts) for label, texts in concepts.SENTENCES.items()} == {
        "positive": 8,
        "negative": 8,
        "neutral": 8,
    }


def test_concept_text_is_read_forgivingly():
    text = "\n  very   positive :  good,great , good,,\r\n\n negative: bad \x07\n"
    assert concepts.parse_concepts(text) == {"very positive": ["good", "great"], "negative": ["bad"]}


def test_only_the_first_colon_ends_a_label():
    parsed = concepts.parse_sentences("neutral: The train leaves at 10:30.\n\npositive: Yes: we won!\nneutral: Noon.")
    assert [(s.label, s.text, s.line) for s in parsed] == [
        ("neutral", "The train leaves at 10:30.", 1),
        ("positive", "Yes: we won!", 3),
        ("neutral", "Noon.", 4),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("\x00\x07 \n", "empty"),
        (None, "must be text"),
        ("positive good, great\nnegative: bad", "Line 1 .* has no ':'"),
        ("positive: good\nnegative:  , ,", "'negative' \\(line 2\\) has no words"),
        ("positive: good\n: bad", "Line 2 has no concept name"),
        ("positive: good, great", "at least two concepts"),
        ("a: x\nb: y\na: z", "'a' is listed twice"),
        ("\n".join(f"c{i}: w" for i in range(concepts.MAX_CONCEPTS + 1)), "at most 8"),
        ("a: " + ", ".join(f"w{i}" for i in range(concepts.MAX_WORDS + 1)) + "\nb: w", "at most 32"),
        ("x" * 41 + ": good\nb: bad", "longer than 40"),
        ("a: good\nb: " + "bad, " * 10_000, "characters long; at most 20,000"),
    ],
)
def test_bad_concept_text_is_refused_with_a_clear_message(text, message):
    with pytest.raises(concepts.ConceptInputError, match=message):
        concepts.parse_concepts(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("   ", "empty"),
        ("positive: Fine.\nno label here\nnegative: Bad.", "Line 2 .* has no label"),
        ("positive: Fine.\nnegative:   \nneutral: Noon.", "Line 2 has the label 'negative' but no sentence"),
        ("a: One.\na: Two.\na: Three.", "Every sentence has the label 'a'"),
        ("a: One.\nb: Two.", "only 2 sentences"),
        ("\n".join(f"{'ab'[i % 2]}: Sentence {i}." for i in range(concepts.MAX_SENTENCES + 1)), "at most 64"),
        ("a: " + "word " * 5_000, "characters long"),
    ],
)
def test_bad_sentences_are_refused_with_a_clear_message(text, message):
    with pytest.raises(concepts.ConceptInputError, match=message):
        concepts.parse_sentences(text)


# --- the maths ------------------------------------------------------------------------------------------


def test_pearson_is_numpy_corrcoef_row_by_row():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 50)), rng.normal(size=(4, 50)) + 5  # an offset changes nothing
    np.testing.assert_allclose(concepts.pearson(a, b), np.corrcoef(a, b)[:3, 3:], atol=1e-12)
    np.testing.assert_allclose(concepts.pearson(a, 2 * a + 1).diagonal(), 1.0)
    flat = concepts.pearson(np.ones((1, 50)), b)  # no variation: r is undefined, reported as 0
    assert np.array_equal(flat, np.zeros((1, 4)))


def test_pca_is_the_svd_of_the_centred_rows():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(12, 30)) @ np.diag(np.linspace(3, 0.1, 30)) + 7
    coordinates, explained = concepts.pca_2d(matrix)
    centred = matrix - matrix.mean(axis=0)
    _, s, vt = np.linalg.svd(centred)
    np.testing.assert_allclose(explained, s[:2] ** 2 / np.sum(s**2))
    for k in range(2):  # each component up to its sign, which pca_2d fixes
        expected = centred @ vt[k]
        assert np.allclose(coordinates[:, k], expected) or np.allclose(coordinates[:, k], -expected)
    np.testing.assert_allclose(
        concepts.pca_2d(-matrix)[0], -coordinates, atol=1e-9
    )  # the sign follows the data, not the SVD's whim


def test_pca_of_points_on_a_line_has_one_direction():
    line = np.outer(np.arange(5.0), np.ones(8))
    coordinates, explained = concepts.pca_2d(line)
    np.testing.assert_allclose(explained, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(coordinates[:, 1], 0.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(coordinates[:, 0] - coordinates[0, 0]), np.sqrt(8) * np.arange(5.0))


def test_centring_finds_what_a_shared_component_hides():
    # Every vector carries the same large part, as real hidden states do; the concept shows only in a small one.
    rng = np.random.default_rng(2)
    shared = 10 * rng.normal(size=64)
    directions = np.eye(64)[:2]
    concept_vectors = shared + directions  # (2, 64): concept i adds direction i
    labels = ["first", "second"] * 4
    sentence_vectors = shared + np.stack([directions[i % 2] + 0.1 * rng.normal(size=64) for i in range(8)])
    analysis = concepts.ConceptAnalysis(
        "synthetic",
        0,
        {"first": ["a"], "second": ["b"]},
        [concepts.LabelledSentence(label, "…") for label in labels],
        concept_vectors,
        sentence_vectors,
    )
    raw, centred = analysis.by_label(), analysis.by_label(centred=True)
    assert raw.shape == centred.shape == (2, 2) and analysis.labels == ["first", "second"]
    assert raw.min() > 0.98 and np.ptp(raw) < 0.02  # the shared part swamps the difference
    assert centred[0, 0] > 0.5 > -0.5 > centred[0, 1] and centred[1, 1] > 0.5 > -0.5 > centred[1, 0]
    assert analysis.closest_labels() == {"first": "first", "second": "second"}


# --- the model's vectors --------------------------------------------------------------------------------


def test_concept_and_sentence_vectors_are_the_hidden_states_read_alone(tiny):
    layer = 1
    analysis = concepts.analyse_concepts(tiny, WORDS, SENTENCES, layer)
    prefix = tiny.tokenizer.eos_token_id  # GPT-2 has no other start token: <|endoftext|> separates documents
    assert analysis.concept_vectors.shape == (3, tiny.d_model) and analysis.sentence_vectors.shape == (5, tiny.d_model)
    for vector, words in zip(analysis.concept_vectors, WORDS.values()):
        expected = []
        for word in words:
            ids = tiny.tokenizer(" " + word).input_ids
            assert len(ids) == 1
            expected.append(hidden_alone(tiny, [prefix, *ids], layer)[1])
        np.testing.assert_allclose(vector, np.mean(expected, axis=0), atol=1e-5)
    for vector, sentence in zip(analysis.sentence_vectors, SENTENCES):  # lengths differ: padding must not leak in
        ids = tiny.tokenizer(sentence.text).input_ids
        np.testing.assert_allclose(vector, hidden_alone(tiny, [prefix, *ids], layer)[1:].mean(axis=0), atol=1e-5)


def test_correlations_by_label_are_the_hand_computed_means(tiny):
    analysis = concepts.analyse_concepts(tiny, WORDS, SENTENCES, 2)
    r = np.corrcoef(analysis.concept_vectors, analysis.sentence_vectors)[:3, 3:]  # (concepts, sentences)
    expected = np.stack([r[:, :2].mean(axis=1), r[:, 2:4].mean(axis=1), r[:, 4]], axis=1)  # labels warm, cold, plain
    np.testing.assert_allclose(analysis.by_label(), expected, atol=1e-10)
    c = analysis.concept_vectors - analysis.concept_vectors.mean(axis=0)
    s = analysis.sentence_vectors - analysis.sentence_vectors.mean(axis=0)
    np.testing.assert_allclose(analysis.correlations(centred=True), np.corrcoef(c, s)[:3, 3:], atol=1e-10)


def test_summary_is_the_api_contract(tiny):
    analysis = concepts.analyse_concepts(tiny, WORDS, SENTENCES, 1)
    summary = json.loads(json.dumps(analysis.summary()))
    assert set(summary) == summary_keys("/lm_concepts")
    assert (
        summary["model"] == tiny.name
        and summary["layer"] == 1
        and summary["d_model"] == tiny.d_model
        and summary["sentences"] == 5
    )
    assert summary["concepts"] == ["warm", "cold", "plain"] and summary["labels"] == ["warm", "cold", "plain"]
    for key in ("correlations", "centred_correlations"):
        assert list(summary[key]) == summary["concepts"]
        assert all(
            list(row) == summary["labels"] and all(isinstance(v, float) and -1 <= v <= 1 for v in row.values())
            for row in summary[key].values()
        )
    assert summary["correlations"]["cold"]["plain"] == round(float(analysis.by_label()[1, 2]), 4)
    share = summary["pca_explained"]
    assert len(share) == 2 and share[0] >= share[1] >= 0 and sum(share) <= 1


def test_the_defaults_run(tiny):
    analysis = concepts.analyse_concepts(tiny, concepts.CONCEPTS, concepts.default_sentences(), 2)
    assert analysis.by_label().shape == (3, 3) and analysis.pca()[0].shape == (24, 2)
    assert set(analysis.closest_labels()) == {"positive", "negative", "neutral"} and not analysis.notes


def test_words_the_tokenizer_splits_are_all_named(tiny):
    with pytest.raises(concepts.ConceptInputError) as caught:
        concepts.analyse_concepts(tiny, {"warm": ["good", "sunny"], "cold": ["ice cream"]}, SENTENCES, 1)
    message = str(caught.value)
    assert (
        "these 2 words" in message
        and "“sunny” (" in message
        and "“ice cream” (" in message
        and "single token" in message
    )
    assert "␣" in message  # the pieces are spelled out, spaces made visible


def test_a_sentence_longer_than_the_limit_names_its_line(tiny):
    sentences = [*SENTENCES, concepts.LabelledSentence("plain", "x" * 200, line=9)]
    with pytest.raises(concepts.ConceptInputError, match="Line 9: the sentence is 200 tokens long; at most 63"):
        concepts.analyse_concepts(tiny, WORDS, sentences, 1)


@pytest.mark.parametrize("layer", [3, -1, 1.5, True])
def test_a_layer_outside_the_model_names_the_range(tiny, layer):
    with pytest.raises(lm.LayerError, match="from 0 .* to 2"):
        concepts.analyse_concepts(tiny, WORDS, SENTENCES, layer)


def test_layer_zero_says_it_counts_shared_words(tiny):
    analysis = concepts.analyse_concepts(tiny, WORDS, SENTENCES, 0)
    assert any("token embeddings" in note for note in analysis.notes)


def test_two_concepts_centred_are_mirror_images_and_the_notes_say_so(tiny):
    two = {"warm": WORDS["warm"], "cold": WORDS["cold"]}
    analysis = concepts.analyse_concepts(tiny, two, SENTENCES, 1)
    centred = analysis.by_label(centred=True)
    np.testing.assert_allclose(centred[0], -centred[1], atol=1e-12)  # one fact, not two
    assert any("mirror images" in note and "third concept" in note for note in analysis.notes)
    three = concepts.analyse_concepts(tiny, WORDS, SENTENCES, 1)
    assert not any("mirror" in note for note in three.notes)
    assert not np.allclose(three.by_label(centred=True)[0], -three.by_label(centred=True)[1])
