"""Sparse autoencoders (SAEs): pull features back out of superposed activations.

    python -m superpos_core.sae --layers 8        # download GPT-2 small's layer-8 SAE once, for offline use

An SAE rewrites an activation vector x (d_in numbers) as a sparse, non-negative code f over many
more "features" than dimensions, and reads x back from it:

    f  = ReLU(x W_enc + b_enc)   (d_sae,)  mostly zeros
    x' = f W_dec + b_dec         (d_in,)

If a network stores more features than it has dimensions (superposition), an SAE trained to
reconstruct its activations with few active features at a time can pull them apart again.

One idea per module:

- ``course``: the course's way, a tiny SAE (16 features) trained in a second on one text.
- ``train``: a general trainer (L1 or TopK, decaying learning rate, dead-latent resampling) for any
  activations, and the measures of a trained SAE (explained variance about the mean, L0, dead latents).
- ``pretrained``: the field's way, ``PretrainedSAE`` loaded from a folder or the Hugging Face hub;
  ``formats``: the file formats it reads (SAELens'), one registry line each; ``releases``: the
  catalogue of published releases, read from ``releases.json``.
- ``readouts``: what a pretrained SAE reads for a text (after the BOS, in windows, centred) and which
  features fire where.
- ``cli``: the download command above.
"""

from superpos_core.sae.checks import MAX_SEED, SAEInputError, SAELoadError
from superpos_core.sae.cli import main
from superpos_core.sae.course import (
    MAX_EPOCHS,
    MAX_FEATURES,
    CourseSAEConfig,
    CourseSAEResult,
    SparseAutoencoder,
    as_activations,
    train_course_sae,
)
from superpos_core.sae.formats import CFG_FILENAME, FORMATS, WEIGHT_NAMES, WEIGHTS_FILENAME, SAEFiles, SAEFormat
from superpos_core.sae.pretrained import (
    SPLIT_ENCODE_WORK,
    PretrainedSAE,
    fetch_pretrained_sae,
    fetch_release_sae,
    load_pretrained_sae,
)
from superpos_core.sae.readouts import (
    WINDOWS_PER_PASS,
    FeatureHit,
    FeatureReading,
    SAEInput,
    hidden_state_index,
    read_features,
    reading_of,
    sae_input,
    token_position,
    top_features,
)
from superpos_core.sae.releases import (
    GPT2_SMALL_RES_JB,
    PRETRAINED_RELEASES,
    PretrainedRelease,
    neuronpedia_url,
    release_for_model,
)
from superpos_core.sae.train import (
    SAE,
    SAETrainConfig,
    SAETrainHistory,
    SAETrainResult,
    dead_latents,
    evaluate,
    explained_variance,
    mean_l0,
    train_sae,
    train_saes,
)

__all__ = [
    "CFG_FILENAME",
    "FORMATS",
    "GPT2_SMALL_RES_JB",
    "MAX_EPOCHS",
    "MAX_FEATURES",
    "MAX_SEED",
    "PRETRAINED_RELEASES",
    "SAE",
    "SPLIT_ENCODE_WORK",
    "WEIGHTS_FILENAME",
    "WEIGHT_NAMES",
    "WINDOWS_PER_PASS",
    "CourseSAEConfig",
    "CourseSAEResult",
    "FeatureHit",
    "FeatureReading",
    "PretrainedRelease",
    "PretrainedSAE",
    "SAEFiles",
    "SAEFormat",
    "SAEInput",
    "SAEInputError",
    "SAELoadError",
    "SAETrainConfig",
    "SAETrainHistory",
    "SAETrainResult",
    "SparseAutoencoder",
    "as_activations",
    "dead_latents",
    "evaluate",
    "explained_variance",
    "fetch_pretrained_sae",
    "fetch_release_sae",
    "hidden_state_index",
    "load_pretrained_sae",
    "main",
    "mean_l0",
    "neuronpedia_url",
    "read_features",
    "reading_of",
    "release_for_model",
    "sae_input",
    "token_position",
    "top_features",
    "train_course_sae",
    "train_sae",
    "train_saes",
]
