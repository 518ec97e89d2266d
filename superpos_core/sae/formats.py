"""The file formats pretrained SAEs come in, behind a small registry: format name -> how to read it.

A format is the files it needs and one function that turns them into an SAE's weights and settings
(``SAEFiles``); ``pretrained.py`` builds the ``PretrainedSAE`` from that, however it was read. To add a
format: write its reader and add one line to ``FORMATS``.

Only SAELens' folder format is read today: ``cfg.json`` (settings) and ``sae_weights.safetensors``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from superpos_core.sae.checks import SAELoadError
from superpos_core.sae.releases import PretrainedRelease

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
WEIGHT_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec")


@dataclass(frozen=True)
class SAESettings:
    """What we use from an SAE's settings, checked: its sizes, what it reads and how its training text was read."""

    d_in: int
    d_sae: int
    hook_name: str
    layer: int | None
    apply_b_dec_to_input: bool
    model_name: str | None
    prepend_bos: bool
    context_size: int | None
    center_writing_weights: bool


@dataclass(frozen=True)
class SAEFiles:
    """What a format's reader returns: the standard SAE's four tensors, its checked settings, and its raw settings."""

    tensors: dict[str, torch.Tensor]  # W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc (d_sae,), b_dec (d_in,), float32
    settings: SAESettings
    cfg: dict  # the settings as the file holds them, for anything else they say


@dataclass(frozen=True)
class SAEFormat:
    """One way SAEs are saved: the files it needs, and the function that reads them."""

    filenames: tuple[str, ...]  # the files of one SAE, in its folder
    # read(paths by filename, source for messages, catalogue entry or None) -> SAEFiles; raises SAELoadError
    read: Callable[[dict[str, Path], str, PretrainedRelease | None], SAEFiles]


# --- SAELens' folder format ------------------------------------------------------------------------

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _read_cfg(cfg_path: Path, source: str) -> dict:
    if not cfg_path.is_file():
        raise SAELoadError(
            f"{source} has no {CFG_FILENAME}. A pretrained SAE folder needs {CFG_FILENAME} (its settings) and "
            f"{WEIGHTS_FILENAME} (its weights), as SAELens saves them."
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SAELoadError(f"{CFG_FILENAME} of {source} is not valid JSON ({error}).") from error
    if not isinstance(cfg, dict):
        raise SAELoadError(
            f"{CFG_FILENAME} of {source} should hold a JSON object of settings; it holds a {type(cfg).__name__}."
        )
    return cfg


_SILENT = object()  # a setting a cfg.json does not record


def _recorded(cfg: dict, key: str, default=_SILENT):
    """A cfg.json setting: at the top level, where SAELens saved it before version 6, or in the
    ``metadata`` object, where SAELens 6 saves where an SAE's inputs come from (model, hook, BOS...)."""
    if key in cfg:
        return cfg[key]
    metadata = cfg.get("metadata")
    if isinstance(metadata, dict) and key in metadata:
        return metadata[key]
    return default


def _with_catalogue(where: str, key: str, recorded, release: PretrainedRelease | None):
    """The file's setting; where it is silent, the catalogue's; a catalogue that disagrees with the file is an error."""
    catalogued = None if release is None else getattr(release, key)
    if recorded is _SILENT or recorded is None:
        return catalogued
    if catalogued is not None and recorded != catalogued:
        raise SAELoadError(
            f"{where}: {key} is {recorded!r}, but the catalogue entry {release.name} says {catalogued!r}; which one describes the SAE's training is unclear."
        )
    return recorded


def _settings(cfg: dict, source: str, release: PretrainedRelease | None = None) -> SAESettings:
    """Check a cfg.json's settings: the ones we need, and none that would change the maths.

    ``release``, the catalogue entry the SAE belongs to, supplies how its training data was read where the
    file is silent (as SAELens' catalogue does for its older releases).
    """
    where = f"{CFG_FILENAME} of {source}"
    sizes = {}
    for key in ("d_in", "d_sae"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            missing = "is missing" if key not in cfg else f"is {value!r}, not a positive whole number"
            raise SAELoadError(f"{where}: {key} {missing}; it is needed to check the weights' shapes.")
        sizes[key] = value

    # Files saved before SAELens 6 call it hook_point (and hook_point_layer); newer ones may leave
    # the layer out altogether, since the hook name already says it.
    hook_name = _recorded(cfg, "hook_name", cfg.get("hook_point"))
    if not isinstance(hook_name, str) or not hook_name:
        raise SAELoadError(
            f"{where}: hook_name (or hook_point) is missing: which activation the SAE reads, e.g. 'blocks.8.hook_resid_pre'."
        )
    match = _BLOCK.match(hook_name)
    named_layer = int(match.group(1)) if match else None
    layer = _recorded(cfg, "hook_layer", cfg.get("hook_point_layer"))
    if layer is None:
        layer = named_layer
    elif not isinstance(layer, int) or isinstance(layer, bool) or (named_layer is not None and layer != named_layer):
        raise SAELoadError(f"{where}: hook_layer {layer!r} does not agree with hook_name {hook_name!r}.")

    # Settings that change what encode must compute. We only compute the standard ReLU SAE, so
    # anything else is refused rather than silently giving wrong features.
    normalize = cfg.get("normalize_activations")
    if normalize not in (None, "none", False):
        meaning = "expected_average_only_in" if normalize is True else normalize  # older files wrote a bool
        raise SAELoadError(
            f"{where}: normalize_activations = {meaning!r} is not supported. Such an SAE expects its input "
            "rescaled by a factor measured on its training data, which is not in the files; only SAEs with "
            "normalize_activations 'none' (or absent) can be used here."
        )
    architecture = cfg.get("architecture", "standard")
    if architecture != "standard":
        raise SAELoadError(
            f"{where}: architecture {architecture!r} is not supported; only the standard ReLU SAE (f = ReLU(x W_enc + b_enc)) is."
        )
    activation = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
    if activation not in (None, "relu"):
        raise SAELoadError(f"{where}: activation function {activation!r} is not supported; only 'relu' is.")
    if cfg.get("finetuning_scaling_factor"):
        raise SAELoadError(
            f"{where}: finetuning_scaling_factor is not supported (it rescales the features after encoding)."
        )
    head = _recorded(cfg, "hook_head_index", cfg.get("hook_point_head_index"))
    if head is not None:
        raise SAELoadError(
            f"{where}: hook_head_index {head!r} is not supported: this SAE reads one attention head's output, not a whole activation."
        )

    apply_b_dec = cfg.get("apply_b_dec_to_input", True)  # SAELens' default for files that leave it out
    if not isinstance(apply_b_dec, bool):
        raise SAELoadError(f"{where}: apply_b_dec_to_input must be true or false; got {apply_b_dec!r}.")
    model_name = _recorded(cfg, "model_name", None)

    # How the training text was read: what sae_input must reproduce.
    prepend_bos = _with_catalogue(where, "prepend_bos", _recorded(cfg, "prepend_bos"), release)
    prepend_bos = True if prepend_bos is None else prepend_bos  # SAELens' default for files that leave it out
    if not isinstance(prepend_bos, bool):
        raise SAELoadError(f"{where}: prepend_bos must be true or false; got {prepend_bos!r}.")
    context_size = _with_catalogue(where, "context_size", _recorded(cfg, "context_size"), release)
    shortest = 2 if prepend_bos else 1  # a window must hold a token of text besides its BOS
    if context_size is not None and (
        not isinstance(context_size, int) or isinstance(context_size, bool) or context_size < shortest
    ):
        raise SAELoadError(
            f"{where}: context_size must be a whole number of at least {shortest} (positions per training window); got {context_size!r}."
        )
    # SAELens loads the model with HookedTransformer.from_pretrained_no_processing(**model_from_pretrained_kwargs)
    # (sae_lens/load_model.py), so kwargs that leave center_writing_weights out mean uncentred weights.
    kwargs = _recorded(cfg, "model_from_pretrained_kwargs")
    if kwargs is not _SILENT and kwargs is not None and not isinstance(kwargs, dict):
        raise SAELoadError(
            f"{where}: model_from_pretrained_kwargs must be an object of keyword arguments; got {kwargs!r}."
        )
    centred = kwargs.get("center_writing_weights", False) if isinstance(kwargs, dict) else _SILENT
    centred = _with_catalogue(where, "center_writing_weights", centred, release)
    centred = False if centred is None else centred
    if not isinstance(centred, bool):
        raise SAELoadError(
            f"{where}: model_from_pretrained_kwargs.center_writing_weights must be true or false; got {centred!r}."
        )
    return SAESettings(
        d_in=sizes["d_in"],
        d_sae=sizes["d_sae"],
        hook_name=hook_name,
        layer=layer,
        apply_b_dec_to_input=apply_b_dec,
        model_name=model_name if isinstance(model_name, str) else None,
        prepend_bos=prepend_bos,
        context_size=context_size,
        center_writing_weights=centred,
    )


def _read_weights(weights_path: Path, settings: SAESettings, source: str) -> dict[str, torch.Tensor]:
    """The four tensors, shapes checked from the header before the (large) data is read."""
    if not weights_path.is_file():
        raise SAELoadError(f"{source} has no {WEIGHTS_FILENAME}: the SAE's weights are missing.")
    d_in, d_sae = settings.d_in, settings.d_sae
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    where = f"{WEIGHTS_FILENAME} of {source}"
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            names = set(handle.keys())
            missing = [name for name in WEIGHT_NAMES if name not in names]
            if missing:
                raise SAELoadError(
                    f"{where} lacks tensor(s) {', '.join(missing)}; it has {sorted(names)}. A standard SAE needs {', '.join(WEIGHT_NAMES)}."
                )
            problems = []
            for name, shape in expected.items():
                actual = tuple(handle.get_slice(name).get_shape())
                if actual != shape:
                    hint = " (it looks transposed)" if actual == shape[::-1] and len(shape) == 2 else ""
                    problems.append(f"{name} has shape {actual}, expected {shape}{hint}")
            if problems:
                raise SAELoadError(
                    f"{where} does not match d_in={d_in}, d_sae={d_sae} in {CFG_FILENAME}: {'; '.join(problems)}."
                )
            # float32 whatever the file stores (some releases ship float16 or bfloat16): CPU matrix
            # products in half precision are slow or unsupported, and the course computes in float32.
            tensors = {name: handle.get_tensor(name).to(torch.float32).contiguous() for name in WEIGHT_NAMES}
            scale = handle.get_tensor("scaling_factor") if "scaling_factor" in names else None
    except SafetensorError as error:
        raise SAELoadError(f"{where} is not a readable safetensors file ({error}).") from error
    if scale is not None and not torch.all(scale == 1):
        raise SAELoadError(
            f"{where} has a scaling_factor that is not all ones; SAEs with a fine-tuned scaling factor are not supported."
        )
    return tensors


def read_saelens(paths: dict[str, Path], source: str, release: PretrainedRelease | None) -> SAEFiles:
    """Read an SAE saved by SAELens: ``cfg.json`` checked first, then the weights' shapes, then the weights."""
    cfg = _read_cfg(paths[CFG_FILENAME], source)
    settings = _settings(cfg, source, release)
    return SAEFiles(_read_weights(paths[WEIGHTS_FILENAME], settings, source), settings, cfg)


FORMATS: dict[str, SAEFormat] = {
    "saelens": SAEFormat((CFG_FILENAME, WEIGHTS_FILENAME), read_saelens),
}


def write_saelens(
    folder: str | Path,
    tensors: dict[str, torch.Tensor],
    settings: SAESettings,
    stored_dtype: torch.dtype = torch.float32,
    **more,
) -> Path:
    """Save a standard ReLU SAE in SAELens' folder format, as ``read_saelens`` (and SAELens) read it back.

    Args:
        folder: where to write ``cfg.json`` and ``sae_weights.safetensors`` (made if missing).
        tensors: W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc (d_sae,), b_dec (d_in,).
        settings: its sizes, what it reads and how its training text was read.
        stored_dtype: the weights' type in the file (float16 halves it; readers compute in float32, cfg's "dtype").
        more: anything else to record in cfg.json (the training recipe, the dataset...).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architecture": "standard",
        "activation_fn": "relu",
        "d_in": settings.d_in,
        "d_sae": settings.d_sae,
        "hook_name": settings.hook_name,
        "apply_b_dec_to_input": settings.apply_b_dec_to_input,
        "normalize_activations": "none",
        "dtype": "float32",
        "prepend_bos": settings.prepend_bos,
        "context_size": settings.context_size,
        # SAELens loads the model with these keyword arguments: this is how it learns about the centring.
        "model_from_pretrained_kwargs": {"center_writing_weights": settings.center_writing_weights},
        **({"hook_layer": settings.layer} if settings.layer is not None else {}),
        **({"model_name": settings.model_name} if settings.model_name else {}),
        **more,
    }
    (folder / CFG_FILENAME).write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    weights = {name: tensors[name].detach().to("cpu", stored_dtype).contiguous() for name in WEIGHT_NAMES}
    save_file(weights, str(folder / WEIGHTS_FILENAME))
    return folder
