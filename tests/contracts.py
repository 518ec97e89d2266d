"""The public API course pages and ``gradio_client`` users build on, as one table every test reads.

Each endpoint: its inputs, in order, by name, and the keys of its first output, the JSON summary of what
the tab shows. ``tests/test_app.py`` checks the built app against this table (names, order, a JSON first
output); the API, fuzz and demo tests check each summary's keys here. Keys may be added (a summary can
say more), never renamed or dropped: a change here is a change to the contract, and the README's API
section says it too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contract:
    inputs: tuple[str, ...]  # the endpoint's parameters, in the order a positional call sends them
    summary: tuple[str, ...] | None  # the first output's keys, in the order it gives them; None: not a summary


def contract(*inputs: str, summary: tuple[str, ...] | None) -> Contract:
    return Contract(tuple(inputs), summary)


TOY_MODEL = ("n", "m", "sparsity", "decay", "steps", "seed")  # the toy model /toy trains; the SAE lab's first inputs

ENDPOINTS = {
    "/mnist": contract("picture", summary=("prediction", "probabilities", "activations", "effective_rank", "sae")),
    "/mnist_train": contract("epochs", "seed", summary=None),  # streams a status line, the table and a plot
    "/toy": contract(
        *TOY_MODEL,
        summary=(
            "n_features",
            "m",
            "sparsity",
            "feature_norms",
            "dimensionality",
            "features_per_dimension",
            "represented",
            "superposition",
            "loss",
        ),
    ),
    "/toy_sweep": contract(
        "n",
        "m",
        "decay",
        "steps",
        "seed",
        summary=("n_features", "m", "sparsity", "represented", "features_per_dimension", "superposition"),
    ),
    "/toy_sae": contract(
        *TOY_MODEL,
        "latents",
        "penalty",
        "sae_steps",
        "sae_seed",
        summary=(
            "n_features",
            "m",
            "latents",
            "recovered",
            "cosines",
            "matched_cosine",
            "explained_variance",
            "l0",
            "true_l0",
            "dead",
        ),
    ),
    "/toy_sae_sweep": contract(
        *TOY_MODEL,
        "latents",
        "sae_steps",
        "sae_seed",
        summary=("n_features", "m", "latents", "penalties", "recovered", "explained_variance", "l0", "true_l0"),
    ),
    "/resnet": contract(
        "picture",
        "model",
        "layer",
        summary=(
            "model",
            "layer",
            "top5",
            "channels",
            "effective_rank",
            "ratio",
            "sample_bound",
            "centred_effective_rank",
            "caution",
        ),
    ),
    "/lm": contract(
        "text",
        "model",
        "layer",
        "view",
        summary=("model", "layer", "tokens", "bos", "d_model", "effective_rank", "rank_to_reach", "next_tokens"),
    ),
    "/lm_sae": contract(
        "text",
        "model",
        "layer",
        "n_features",
        "l1_weight",
        "epochs",
        "seed",
        summary=("features", "l0", "mse", "mean_activation"),
    ),
    "/lm_concepts": contract(
        "concept_words",
        "sentences",
        "model",
        "layer",
        summary=(
            "model",
            "layer",
            "d_model",
            "concepts",
            "labels",
            "sentences",
            "correlations",
            "centred_correlations",
            "pca_explained",
        ),
    ),
    "/lm_features": contract(
        "text",
        "model",
        "layer",
        summary=("sae", "layer", "d_sae", "tokens", "explained_variance", "l0", "top_features", "per_token"),
    ),
    "/lm_feature": contract(
        "model",
        "layer",
        "feature",
        summary=(
            "feature",
            "density",
            "top_examples",
            "top_logits",
            "bottom_logits",
            "interval_examples",
            "histogram",
            "sae",
            "layer",
            "d_sae",
            "corpus_tokens",
            "neuronpedia",
        ),
    ),
    "/lm_steer": contract(
        "prompt",
        "model",
        "layer",
        "feature",
        "strength",
        "tokens",
        "seed",
        summary=(
            "baseline",
            "steered",
            "kl",
            "feature_activation",
            "gained",
            "lost",
            "strength",
            "typical_activation",
            "added_norm",
            "stream_norm",
            "tokens",
            "layer",
            "feature",
            "generated",
            "complete",
        ),
    ),
    "/lesson": contract(
        "lesson",
        "step",
        "guess",
        summary=(
            "lesson",
            "step",
            "question",
            "guess",
            "answer",
            "value",
            "stated",
            "right",
            "endpoint",
            "link",
            "endpoint_summary",
        ),
    ),
}


def summary_keys(endpoint: str) -> set[str]:
    """The keys the first output of ``endpoint`` carries (``set(summary) == summary_keys("/toy")``)."""
    keys = ENDPOINTS[endpoint].summary
    if keys is None:
        raise KeyError(f"{endpoint}'s first output is not a summary")
    return set(keys)
