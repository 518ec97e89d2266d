"""The catalogue of pretrained SAE releases, read from ``releases.json`` (data, not code).

Each release names what the app needs to use it: the model it reads (the key of ``lm.CATALOGUE``),
where its files are, the activation (hook) and layers it covers, its size, and how its training text
was read (BOS, context size, centring), which a ``cfg.json`` does not always record. Adding a release
is one entry in ``releases.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from superpos_core.sae.checks import SAEInputError

RELEASES_FILE = Path(__file__).with_name("releases.json")


@dataclass(frozen=True)
class PretrainedRelease:
    """A family of pretrained SAEs published together, one folder per layer (catalogue entry)."""

    name: str  # SAELens' release id (the key in releases.json)
    model: str  # the model whose activations they read: its key in lm.CATALOGUE
    model_name: str  # the same model as TransformerLens names it (what a cfg.json records)
    repo_id: str  # Hugging Face repository
    subfolder_pattern: str  # the folder of one layer's SAE, formatted with layer=
    hook_pattern: str  # the activation it reads, TransformerLens-named, formatted with layer=
    layers: tuple[int, ...]  # layers with an SAE in this release (as catalogued here)
    d_in: int  # activation size
    d_sae: int  # features per SAE
    neuronpedia_pattern: str  # a feature's page, formatted with layer= and index=
    format: str = "saelens"  # how its files are written: a key of formats.FORMATS
    download_mb: int | None = None  # about how many MB one layer's files take, for the learner
    notes: str = ""  # what a learner should know about where the SAEs come from
    settings_source: str = ""  # why the reading settings below are what they are, where the files are silent
    # How the SAEs' training data was read, used where a cfg.json is silent (a cfg.json that says otherwise
    # is refused): None leaves it to the file, or to SAELens' default when the file is silent too.
    prepend_bos: bool | None = None  # each training window started with the model's BOS
    center_writing_weights: bool | None = None  # TransformerLens centred the model's writing weights
    context_size: int | None = None  # positions per training window, BOS included

    def subfolder(self, layer: int) -> str:
        self.check_layer(layer)
        return self.subfolder_pattern.format(layer=layer)

    def hook_name(self, layer: int) -> str:
        self.check_layer(layer)
        return self.hook_pattern.format(layer=layer)

    def check_layer(self, layer: int) -> None:
        """Raise ``SAEInputError`` unless the release has an SAE for ``layer``."""
        if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or layer not in self.layers:
            raise SAEInputError(
                f"{self.name} has SAEs for layers {self.layers[0]} to {self.layers[-1]}; got layer {layer!r}."
            )


def read_releases(path: Path = RELEASES_FILE) -> dict[str, PretrainedRelease]:
    """Every release in a catalogue file, by name. An unknown field is an error, so a typo cannot pass unseen."""
    known = {f.name for f in fields(PretrainedRelease)}
    releases = {}
    for name, entry in json.loads(path.read_text(encoding="utf-8")).items():
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"{path.name}: release {name} has unknown field(s) {sorted(unknown)}.")
        releases[name] = PretrainedRelease(name=name, **{**entry, "layers": tuple(entry["layers"])})
    return releases


PRETRAINED_RELEASES = read_releases()  # release name -> catalogue entry
GPT2_SMALL_RES_JB = PRETRAINED_RELEASES["gpt2-small-res-jb"]


def release_for_model(model: str) -> PretrainedRelease | None:
    """The catalogued release that reads ``model`` (a key of ``lm.CATALOGUE``), or None if none does."""
    return next((release for release in PRETRAINED_RELEASES.values() if release.model == model), None)


def neuronpedia_url(layer: int, index: int, release: PretrainedRelease = GPT2_SMALL_RES_JB) -> str:
    """The Neuronpedia page of feature ``index`` of the layer-``layer`` SAE (top activations, explanations)."""
    release.check_layer(layer)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < release.d_sae:
        raise SAEInputError(f"Feature numbers of {release.name} run from 0 to {release.d_sae - 1:,}; got {index!r}.")
    return release.neuronpedia_pattern.format(layer=int(layer), index=int(index))
