"""Builders the SAE tests share (and the language-model tab's tests): SAEs in SAELens' folder format, made here."""

import json
import math
from pathlib import Path

import numpy as np
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file

D_IN, D_SAE = 16, 64


DROP = object()  # as a cfg value: leave that key out of cfg.json


def sae_tensors(d_in: int = D_IN, d_sae: int = D_SAE, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d_in, d_sae, generator=generator) / math.sqrt(d_in),
        "W_dec": torch.randn(d_sae, d_in, generator=generator) / math.sqrt(d_sae),
        "b_enc": torch.randn(d_sae, generator=generator) * 0.5,
        "b_dec": torch.randn(d_in, generator=generator),
    }


def write_sae_folder(folder: Path, tensors: dict[str, torch.Tensor] | None = None, **cfg_changes) -> Path:
    """A folder exactly as SAELens publishes one: cfg.json and sae_weights.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "model_name": "gpt2-small",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "hook_name": "blocks.8.hook_resid_pre",
        "hook_layer": 8,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "dtype": "torch.float32",
        "context_size": 128,
        "prepend_bos": True,
    }
    for key, value in cfg_changes.items():
        if value is DROP:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(sae_tensors() if tensors is None else tensors, str(folder / "sae_weights.safetensors"))
    return folder


def hand_encode(x: np.ndarray, t: dict[str, torch.Tensor], apply_b_dec: bool) -> np.ndarray:
    W_enc, b_enc, b_dec = (t[k].double().numpy() for k in ("W_enc", "b_enc", "b_dec"))
    centred = x - b_dec if apply_b_dec else x
    return np.maximum(centred @ W_enc + b_enc, 0.0)


class FakeHub:
    """Stands in for ``hf_hub_download``: serves a folder the test wrote, or fails as the hub does."""

    def __init__(self, folder: Path | None = None, error: Exception | None = None):
        self.folder, self.error, self.calls = folder, error, []

    def __call__(self, repo_id, filename, *, subfolder=None, revision=None, local_files_only=False):
        self.calls.append((repo_id, subfolder, filename, local_files_only))
        if self.error is not None:
            raise self.error
        return str(self.folder / filename)


OFFLINE = LocalEntryNotFoundError(
    "An error happened while trying to locate the file on the Hub and we cannot find the requested files in the local cache."
)
