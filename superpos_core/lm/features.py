"""The features an SAE trained on millions of tokens finds in a text, and each feature's dashboard.

    from superpos_core import lm
    from superpos_core.lm import features
    loaded = lm.load("smollm2-135m-offline")
    found = features.feature_sae("smollm2-135m-offline")          # the SAE trained here, and its dashboards
    features.text_features(found, loaded, "And God said, Let there be light")["top_features"]
    features.feature_dashboard(found, loaded.tokenizer, 123)["top_examples"][0]

Offline, SmolLM2-135M has an SAE trained here on its residual stream over the bundled corpus (``corpus_sae``), with
every feature's dashboard computed over that corpus (``dashboards``) and shipped beside it in ``assets/``. Its
numbers are those of this SAE on this model: a dashboard's top example, run back through ``text_features``, makes
the feature fire there again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from superpos_core import corpus, paths
from superpos_core import sae as saes
from superpos_core.lm import corpus_activations, dashboards
from superpos_core.lm.analysis import TextAnalysis, analyse_text
from superpos_core.lm.dashboards import FeatureDashboards
from superpos_core.lm.loading import LoadedLM
from superpos_core.lm.tokens import readable_token
from superpos_core.serving import Kept

ASSETS = paths.ASSETS
# Catalogue key -> the folder of the SAE trained here for it (SAELens' files, provenance.json, dashboards.npz).
BUNDLED = {"smollm2-135m-offline": ASSETS / "smollm2_sae_l15"}
SLICE = ASSETS / "corpus_slice.jsonl.gz"  # what a pretrained SAE's dashboards are built from (``corpus.write_slice``)
SLICE_TOKENS = 40_000  # at most this many of its tokens are read for them
RELEASE_LAYER = 6  # a pretrained release's layer when none is named: GPT-2's middle one, the one the Space preloads
TOP = 10  # features listed per text and per token
LOGITS = 10  # tokens listed as promoted and as suppressed


class FeaturesUnavailable(ValueError):
    """No SAE with dashboards for this model and layer here; the message says what there is."""


@dataclass(frozen=True)
class FeatureSAE:
    """An SAE of one model's layer, with every feature's dashboard."""

    name: str  # how the app names it, e.g. "superpos/smollm2-135m-offline/layer-15"
    model: str  # the catalogue key of the model it reads
    layer: int  # the hidden state it reads (0 = embeddings, as the tab numbers layers)
    sae: saes.PretrainedSAE
    dashboards: FeatureDashboards
    provenance: dict  # how it was made and what it scores on held-out text
    neuronpedia: str | None = None  # a pretrained release's page pattern, with {index}

    @property
    def d_sae(self) -> int:
        return self.sae.d_sae


def bundled_layer(model: str) -> int | None:
    """The layer the SAE trained here for ``model`` reads, or None when there is none."""
    folder = BUNDLED.get(model)
    if folder is None or not (folder / "cfg.json").exists():
        return None
    return int(json.loads((folder / "cfg.json").read_text())["hook_layer"])


_kept: Kept[FeatureSAE] = Kept()  # (folder, device) -> the SAE and its dashboards, read once per process


def read_feature_sae(folder: Path, model: str, device: torch.device = torch.device("cpu")) -> FeatureSAE:
    """An SAE folder with its dashboards (``dashboards.npz``) and provenance, read once per process and kept."""

    def read() -> FeatureSAE:
        model_sae = saes.load_pretrained_sae(folder).to(device)
        provenance_path = folder / "provenance.json"
        provenance = json.loads(provenance_path.read_text()) if provenance_path.exists() else {}
        layer = saes.hidden_state_index(model_sae.hook_name, 10**6)
        return FeatureSAE(
            f"superpos/{model}/layer-{layer}",
            model,
            layer,
            model_sae,
            FeatureDashboards(folder / "dashboards.npz"),
            provenance,
        )

    return _kept.get_or_make((str(folder), str(torch.device(device))), read)


def feature_sae(
    model: str, layer=None, device: torch.device = torch.device("cpu"), loaded: LoadedLM | None = None, progress=None
) -> FeatureSAE:
    """The SAE with dashboards for ``model`` at ``layer`` (None or "": the SAE's own layer).

    For a model with an SAE trained here, that SAE. For one with a pretrained release (GPT-2 small), the release's
    SAE from the Hugging Face cache, its dashboards built from the bundled corpus slice on first use (``loaded`` is
    the model, ``progress`` moves while they are built; then they are read from the app's cache).

    Raises ``FeaturesUnavailable`` saying what there is when there is none for this model or layer.
    """
    own = bundled_layer(model)
    if own is None:
        release = saes.release_for_model(model)
        if release is None:
            have = ", ".join(
                f"`{key}` (layer {bundled_layer(key)})" for key in BUNDLED if bundled_layer(key) is not None
            )
            pretrained = ", ".join(f"`{r.model}`" for r in saes.PRETRAINED_RELEASES.values())
            raise FeaturesUnavailable(
                f"No SAE with feature dashboards is here for {model!r}. SAEs trained here: {have or 'none'}; "
                f"pretrained SAEs (online): {pretrained}."
            )
        return release_feature_sae(release, RELEASE_LAYER if layer in (None, "") else layer, device, loaded, progress)
    if layer not in (None, "") and layer != own:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer, float)) or float(layer) != own:
            raise FeaturesUnavailable(
                f"The SAE trained here for {model} reads layer {own}, not layer {layer!r}: choose layer {own}, or leave the "
                "layer empty for the SAE's own."
            )
    return read_feature_sae(BUNDLED[model], model, device)


def _release_layer(release: saes.PretrainedRelease, layer) -> int:
    if isinstance(layer, float) and layer.is_integer():
        layer = int(layer)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or int(layer) not in release.layers:
        raise FeaturesUnavailable(
            f"{release.name}'s SAEs read layers {release.layers[0]} to {release.layers[-1]}; got {layer!r}."
        )
    return int(layer)


def release_feature_sae(
    release: saes.PretrainedRelease,
    layer,
    device: torch.device = torch.device("cpu"),
    loaded: LoadedLM | None = None,
    progress=None,
    model_sae: saes.PretrainedSAE | None = None,
) -> FeatureSAE:
    """A pretrained release's SAE for ``layer``, with dashboards built from the corpus slice on first use and kept in
    ``paths.cache_dir()/dashboards/<release>/layer-<L>/`` (``model_sae``: the SAE itself, if already loaded)."""
    layer = _release_layer(release, layer)
    folder = paths.cache_dir() / "dashboards" / release.name / f"layer-{layer}"

    def make() -> FeatureSAE:
        nonlocal model_sae
        if model_sae is None:
            try:
                model_sae = saes.fetch_release_sae(layer, release=release, local_files_only=True).to(device)
            except saes.SAELoadError as error:
                raise FeaturesUnavailable(
                    f"{release.name}'s SAE for layer {layer} is not on this machine ({error}). Get it once, on a machine "
                    f"with internet: `python -m superpos_core.sae --layers {layer}`."
                ) from None
        if not (folder / dashboards.DASHBOARDS_FILE).exists():
            if loaded is None:
                raise FeaturesUnavailable(
                    f"Load {release.model} first: its dashboards are built from its own activations."
                )
            build_slice_dashboards(loaded, model_sae, folder, progress)
        hidden = saes.hidden_state_index(model_sae.hook_name, 10**6)
        return FeatureSAE(
            f"{release.name}/{model_sae.hook_name}",
            release.model,
            hidden,
            model_sae,
            FeatureDashboards(folder / dashboards.DASHBOARDS_FILE),
            {"release": release.name, "dashboards_from": json.loads(json.dumps(slice_about()))},
            release.neuronpedia_pattern.replace("{layer}", str(layer)) if release.neuronpedia_pattern else None,
        )

    return _kept.get_or_make((release.name, layer, str(torch.device(device))), make)


def release_ready(model: str, layer=None) -> bool:
    """Whether ``model``'s pretrained SAE for ``layer`` (None: ``RELEASE_LAYER``) has its dashboards built already."""
    release = saes.release_for_model(model)
    if release is None:
        return False
    try:
        layer = _release_layer(release, RELEASE_LAYER if layer in (None, "") else layer)
    except FeaturesUnavailable:
        return False
    return (paths.cache_dir() / "dashboards" / release.name / f"layer-{layer}" / dashboards.DASHBOARDS_FILE).exists()


def slice_about(path: Path = SLICE) -> dict:
    """The bundled slice's manifest: its sources, their packages and licences."""
    return corpus.read_slice(path)[0]


@torch.no_grad()
def slice_rows(
    loaded: LoadedLM, model_sae: saes.PretrainedSAE, path: Path = SLICE, max_tokens: int = SLICE_TOKENS, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """``model_sae``'s inputs over the corpus slice, read as its training text was: (rows (N, d_in) float32, windows
    (W, context) token ids, each led by the BOS), in ``corpus_activations``' layout.

    Windows of the SAE's context (BOS included), the text run together with the end-of-text token between documents;
    the stream at the SAE's hook, centred where its model's writing weights were; at most ``max_tokens`` text tokens,
    in windows spread over the whole slice.
    """
    if not model_sae.prepend_bos:
        raise FeaturesUnavailable("Dashboards are built from BOS-led windows; this SAE was trained without a BOS.")
    texts = [row["text"] for row in corpus.read_slice(path)[1]]
    context = min(model_sae.context_size or loaded.context_length, loaded.context_length)
    ids = np.array(list(corpus_activations.windows(loaded.tokenizer, texts, context)), dtype=np.int64)
    ids = corpus_activations.spread(ids.reshape(-1, context), max_tokens)
    index = saes.hidden_state_index(model_sae.hook_name, loaded.n_layers)
    rows = []
    for start in range(0, len(ids), corpus_activations.BATCH):
        if progress is not None:
            progress(0.3 * start / len(ids), desc=f"Dashboards: reading the corpus slice with {loaded.title}")
        stream = corpus_activations.residual_stream(
            loaded, torch.from_numpy(ids[start : start + corpus_activations.BATCH]), index
        )
        stream = stream[:, 1:].reshape(-1, stream.shape[-1]).cpu()  # the BOS rows dropped
        if model_sae.center_writing_weights:
            stream = stream - stream.mean(-1, keepdim=True)
        rows.append(stream)
    return torch.cat(rows).numpy(), ids


def build_slice_dashboards(loaded: LoadedLM, model_sae: saes.PretrainedSAE, folder: Path, progress=None) -> Path:
    """Every feature's dashboard of a pretrained SAE over the bundled corpus slice, written into ``folder`` (in a
    temporary folder beside it first, then renamed: a stopped build leaves nothing half-written)."""
    import shutil
    import tempfile

    rows, ids = slice_rows(loaded, model_sae, progress=progress)

    def later(fraction: float, desc: str) -> None:
        if progress is not None:
            progress(0.3 + 0.7 * fraction, desc=desc)

    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        dashboards.dashboards_from_rows(
            model_sae,
            rows,
            ids,
            loaded.model.get_output_embeddings().weight.detach(),
            building,
            {"model": loaded.name, "hook": model_sae.hook_name, "corpus": "the bundled corpus slice", **slice_about()},
            log=lambda _: None,
            progress=later,
        )
        if folder.exists():
            shutil.rmtree(folder)
        building.rename(folder)
    finally:
        if building.exists():
            shutil.rmtree(building)
    return folder / dashboards.DASHBOARDS_FILE


def _tokens(tokenizer, ids: list[int]) -> list[str]:
    return [readable_token(tokenizer, int(i)) for i in ids]


def text_features(
    found: FeatureSAE, loaded: LoadedLM, text: str, analysis: TextAnalysis | None = None, k: int = TOP
) -> dict:
    """The ``/lm_features`` summary: which of the SAE's features fire on each token of ``text``.

    Returns {"sae", "layer", "d_sae", "tokens" (decoded, joining back into the text), "explained_variance" (of this
    text's activations, about their mean; None for one token), "l0" (mean features firing per token),
    "top_features": [[index, activation, token_position]] strongest first by peak, "per_token": for each token
    [[index, activation]] strongest first}. The text is read as the SAE's training text was: after the BOS, in
    windows of its context (``sae.sae_input``).

    Args:
        analysis: the text's analysis at any layer, if there is one (its forward pass is reused).
    """
    if loaded.name != found.model and loaded.name != found.sae.model_name:
        raise FeaturesUnavailable(f"This SAE reads {found.model}, not {loaded.name}.")
    if analysis is None:
        analysis = analyse_text(loaded, text, found.layer)
    fed = saes.sae_input(found.sae, loaded, analysis.token_ids, analysis)
    x = fed.activations  # (T, d_in)
    with torch.inference_mode():
        codes = found.sae.encode(x)  # (T, d_sae): encoded once, for the features and the explained variance
        error = (found.sae.decode(codes) - x.to(codes.device)).pow(2).sum()
    reading = saes.reading_of(fed, codes, k)
    spread = (x - x.mean(0)).pow(2).sum()
    return {
        "sae": found.name,
        "layer": found.layer,
        "d_sae": found.d_sae,
        "tokens": list(analysis.tokens),
        "explained_variance": round(float(1 - error / spread), 4) if len(x) > 1 and spread > 0 else None,
        "l0": round(float((codes > 0).sum(1).float().mean()), 2),
        "top_features": [[h.index, round(h.activation, 4), h.token] for h in reading.over_text],
        "per_token": [[[h.index, round(h.activation, 4)] for h in hits] for hits in reading.per_token],
    }


def features_on_tokens(
    found: FeatureSAE, loaded: LoadedLM, text: str, features: list[int], analysis: TextAnalysis | None = None
) -> np.ndarray:
    """(T, len(features)) the activations of ``features`` on every token of ``text``, read as ``text_features``
    reads it: the tokens × features view of a text."""
    if analysis is None:
        analysis = analyse_text(loaded, text, found.layer)
    fed = saes.sae_input(found.sae, loaded, analysis.token_ids, analysis)
    with torch.inference_mode():
        codes = found.sae.encode(fed.activations)  # (T, d_sae)
    return codes[:, list(features)].cpu().numpy()


def feature_dashboard(found: FeatureSAE, tokenizer, feature) -> dict:
    """The ``/lm_feature`` summary of one feature: everything its dashboard shows, as numbers.

    Returns {"feature", "density" (share of corpus tokens it fires on), "top_examples": [{"tokens", "activations",
    "position" (the token it was chosen for)}] strongest first, "interval_examples": [{"low", "high", "examples": [...]}] (bands of its strongest activation,
    highest first), "top_logits" / "bottom_logits": [[token, logit change per unit of activation]], "histogram":
    {"edges", "counts"} of its non-zero activations, "sae", "layer", "d_sae", "corpus_tokens"}.

    Raises ``ValueError`` naming the valid range for a feature that does not exist.
    """
    shown = found.dashboards
    i = shown.check(feature)

    def examples(found_examples) -> list[dict]:
        return [
            {
                "tokens": _tokens(tokenizer, e.token_ids),
                "activations": [round(v, 4) for v in e.activations],
                "position": e.position,
            }
            for e in found_examples
        ]

    up, down = shown.logits(i)
    counts = shown.histogram(i)
    return {
        "feature": i,
        "density": shown.density(i),
        "top_examples": examples(shown.top_examples(i)),
        "top_logits": [[readable_token(tokenizer, t), round(v, 4)] for t, v in up[:LOGITS]],
        "bottom_logits": [[readable_token(tokenizer, t), round(v, 4)] for t, v in down[:LOGITS]],
        "interval_examples": [
            {"low": low, "high": high, "examples": examples(band)} for low, high, band in shown.interval_examples(i)
        ],
        "histogram": {"edges": shown.arrays["bins"].tolist(), "counts": counts.tolist()},
        "sae": found.name,
        "layer": found.layer,
        "d_sae": found.d_sae,
        "corpus_tokens": int(shown.arrays["rows"]),
        "neuronpedia": found.neuronpedia.replace("{index}", str(i)) if found.neuronpedia else None,
    }


def search_word(found: FeatureSAE, tokenizer, word: str, k: int = TOP) -> list[dict]:
    """The features that fire most, on average over the corpus, on the token(s) ``word`` is read as.

    A word is looked up as the tokenizer reads it inside a text (after a space) and at the start of one; a word of
    several tokens is looked up by its last token, where the model has read all of it. Each form met in the corpus
    gives {"form", "token", "count" (times met), "features": [[index, mean activation]]}.
    """
    word = str(word).strip()
    if not word:
        raise ValueError("Type a word to look up.")
    results, seen = [], set()
    for form in (" " + word, word):
        ids = tokenizer(form, add_special_tokens=False)["input_ids"]
        if not ids or ids[-1] in seen:
            continue
        seen.add(ids[-1])
        count, pairs = found.dashboards.features_on_token(ids[-1])
        if count:
            results.append(
                {
                    "form": form,
                    "token": readable_token(tokenizer, ids[-1]),
                    "tokens": len(ids),
                    "count": count,
                    "features": [[f, round(v, 4)] for f, v in pairs[:k]],
                }
            )
    return results
