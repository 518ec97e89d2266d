"""Pretrained SAEs: the standard ReLU SAE with SAELens' weight names, and loading one from a folder or the hub.

    python -m superpos_core.sae --layers 8        # download GPT-2 small's layer-8 SAE once, for offline use

The field's SAEs have tens of thousands of features trained on hundreds of millions of tokens, and are
published on the Hugging Face hub (for GPT-2 small, in SAELens' folder format). Files are read by the
format registry (``formats.py``); every format gives the same ``PretrainedSAE``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from torch import nn

from superpos_core import serving
from superpos_core.sae.checks import SAELoadError
from superpos_core.sae.formats import FORMATS, SAEFiles, SAEFormat
from superpos_core.sae.releases import GPT2_SMALL_RES_JB, PRETRAINED_RELEASES, PretrainedRelease

SPLIT_ENCODE_WORK = 2**27  # multiply-adds from which ``PretrainedSAE.encode`` uses two threads


class PretrainedSAE(nn.Module):
    """A standard ReLU SAE with SAELens' weight names, for inference.

    The parameters do not require gradients; call ``requires_grad_(True)`` to attribute through it.

    Args:
        W_enc: (d_in, d_sae) encoder weights.
        W_dec: (d_sae, d_in) decoder weights: row i is feature i's direction in activation space.
        b_enc: (d_sae,) encoder bias.
        b_dec: (d_in,) decoder bias.
        hook_name: the activation the SAE reads, TransformerLens-named (``blocks.8.hook_resid_pre``).
        layer: the block that activation belongs to, or None for one outside the blocks.
        apply_b_dec_to_input: whether ``encode`` subtracts ``b_dec`` first (centring x on the
            decoder's bias, as most SAELens SAEs were trained).
        model_name: the model the SAE was trained on, if ``cfg.json`` says.
        prepend_bos: whether each window of its training text started with the model's BOS token.
        context_size: positions per training window, BOS included (None: not recorded).
        center_writing_weights: whether it was trained on TransformerLens' centred residual stream:
            with the model's writing weights centred, every activation has zero mean over d_in.
        source: where it was loaded from, for messages.
        cfg: the whole ``cfg.json``, for anything else it says.
    """

    def __init__(
        self,
        W_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_enc: torch.Tensor,
        b_dec: torch.Tensor,
        *,
        hook_name: str,
        layer: int | None,
        apply_b_dec_to_input: bool = True,
        model_name: str | None = None,
        prepend_bos: bool = True,
        context_size: int | None = None,
        center_writing_weights: bool = False,
        source: str = "",
        cfg: dict | None = None,
    ) -> None:
        super().__init__()
        # (d_in, d_sae), stored column-major: each half of its columns is then one contiguous block,
        # which is what ``encode`` hands to each of its two threads.
        self.W_enc = nn.Parameter(W_enc.T.contiguous().T, requires_grad=False)
        self.W_dec = nn.Parameter(W_dec, requires_grad=False)  # (d_sae, d_in)
        self.b_enc = nn.Parameter(b_enc, requires_grad=False)  # (d_sae,)
        self.b_dec = nn.Parameter(b_dec, requires_grad=False)  # (d_in,)
        self.hook_name = hook_name
        self.layer = layer
        self.apply_b_dec_to_input = apply_b_dec_to_input
        self.model_name = model_name
        self.prepend_bos = prepend_bos
        self.context_size = context_size
        self.center_writing_weights = center_writing_weights
        self.source = source
        self.cfg = dict(cfg or {})

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU((x - b_dec) W_enc + b_enc), or without ``- b_dec`` if not ``apply_b_dec_to_input``.

        x is cast to the SAE's dtype and device: models often run in half precision, and the
        features should not depend on that.
        """
        x = x.to(device=self.W_enc.device, dtype=self.W_enc.dtype)  # (..., d_in)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        flat = x.reshape(-1, self.d_in)  # (N, d_in)

        # addmm adds b_enc inside the product and the ReLU reuses its output: for 64 tokens and
        # 24,576 features that saves two passes over a 6 MB result.
        def features(columns: slice) -> torch.Tensor:
            return torch.addmm(self.b_enc[columns], flat, self.W_enc[:, columns]).relu_()  # (N, columns)

        if (
            flat.device.type == "cpu"
            and flat.shape[0] * self.d_in * self.d_sae >= SPLIT_ENCODE_WORK
            and (os.cpu_count() or 1) > 1
        ):
            # A big product (64 tokens × 768 × 24,576 is 1.2 G multiply-adds, ~25 ms on one core) is
            # split into two halves of the features, one per core: ~14 ms. PyTorch's own threads are
            # left at the app's setting, one per request; the matrix product runs without the GIL.
            half = self.d_sae // 2
            halves = [serving.encode_pool().submit(features, part) for part in (slice(0, half), slice(half, None))]
            codes = torch.cat([h.result() for h in halves], dim=1)  # (N, d_sae)
        else:
            codes = features(slice(None))  # (N, d_sae)
        return codes.reshape(*x.shape[:-1], self.d_sae)  # (..., d_sae)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.W_dec + self.b_dec  # (..., d_sae) -> (..., d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x (..., d_in)."""
        return self.decode(self.encode(x))

    @classmethod
    def from_files(cls, files: SAEFiles, source: str) -> PretrainedSAE:
        """The SAE a format's reader described (``formats.SAEFiles``), in inference mode."""
        s = files.settings
        return cls(
            **files.tensors,
            hook_name=s.hook_name,
            layer=s.layer,
            apply_b_dec_to_input=s.apply_b_dec_to_input,
            model_name=s.model_name,
            prepend_bos=s.prepend_bos,
            context_size=s.context_size,
            center_writing_weights=s.center_writing_weights,
            source=source,
            cfg=files.cfg,
        ).eval()


def _format(name: str) -> SAEFormat:
    if name not in FORMATS:
        raise SAELoadError(f"Unknown SAE format {name!r}; the formats read here are: {', '.join(FORMATS)}.")
    return FORMATS[name]


def load_pretrained_sae(
    folder: str | Path, release: PretrainedRelease | None = None, format: str | None = None
) -> PretrainedSAE:
    """Load an SAE saved in a folder, by default in SAELens' format: ``folder/cfg.json`` and ``folder/sae_weights.safetensors``.

    Raises ``SAELoadError`` for a missing file or tensor, a shape that does not match ``d_in`` and
    ``d_sae``, or a setting this loader does not compute (normalised inputs, non-ReLU
    architectures); the message names it.

    Args:
        folder: the folder holding the format's files.
        release: the catalogue entry it belongs to, if any: it says how the SAE's training text was
            read (BOS, context size, centring) where ``cfg.json`` is silent.
        format: a key of ``formats.FORMATS``; by default the release's format, else SAELens'.
    """
    saved = _format(format or (release.format if release is not None else "saelens"))
    folder = Path(folder)
    if not folder.is_dir():
        raise SAELoadError(
            f"There is no folder {folder}: a pretrained SAE is a folder holding {' and '.join(saved.filenames)}."
        )
    paths = {filename: folder / filename for filename in saved.filenames}
    return PretrainedSAE.from_files(saved.read(paths, str(folder), release), source=str(folder))


def _why_unavailable(error: Exception) -> str:
    if isinstance(error, LocalEntryNotFoundError):  # before RemoteEntryNotFoundError's relatives
        return "it is not in the local Hugging Face cache and the hub could not be reached (offline?)"
    if isinstance(error, GatedRepoError):
        return "the repository is gated: accept its terms on huggingface.co and log in with `hf auth login`"
    if isinstance(error, RepositoryNotFoundError):
        return "the hub has no such repository (check the name)"
    if isinstance(error, RevisionNotFoundError):
        return "the hub has no such revision of the repository"
    if isinstance(error, RemoteEntryNotFoundError):
        return "the repository has no such file (check the subfolder)"
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def fetch_pretrained_sae(
    repo_id: str,
    subfolder: str,
    *,
    local_files_only: bool = False,
    revision: str | None = None,
    release: PretrainedRelease | None = None,
    format: str | None = None,
) -> PretrainedSAE:
    """Load a pretrained SAE from the Hugging Face hub, through the ordinary Hugging Face cache.

    The first call downloads ``subfolder/cfg.json`` and ``subfolder/sae_weights.safetensors``;
    later calls find them in the cache (``$HF_HOME``, by default ``~/.cache/huggingface``), also
    offline. Any failure (offline and not cached, no such repository or file, a gated repository)
    becomes ``SAELoadError`` saying what is unavailable and how to get it.

    Args:
        repo_id: the hub repository, e.g. ``GPT2_SMALL_RES_JB.repo_id``.
        subfolder: the SAE's folder in it, e.g. ``GPT2_SMALL_RES_JB.subfolder(8)``.
        local_files_only: look only in the cache. Offline, the hub client otherwise retries for
            about 20 s before giving up; a server that knows it is offline should pass True (or
            set ``HF_HUB_OFFLINE=1``).
        revision: a branch, tag or commit of the repository (default: main).
        release: the catalogue entry it belongs to (see ``load_pretrained_sae``); by default the
            catalogued release of ``repo_id``, if there is one, so that its SAEs are read as trained
            whichever way they are fetched.
        format: a key of ``formats.FORMATS``; by default the release's format, else SAELens'.
    """
    if release is None:
        release = next((entry for entry in PRETRAINED_RELEASES.values() if entry.repo_id == repo_id), None)
    saved = _format(format or (release.format if release is not None else "saelens"))
    paths = {}
    for filename in saved.filenames:
        try:
            paths[filename] = Path(
                hf_hub_download(
                    repo_id, filename, subfolder=subfolder, revision=revision, local_files_only=local_files_only
                )
            )
        except Exception as error:  # offline, 404, gated, disk full...: all mean "not available"
            raise SAELoadError(
                f"The pretrained SAE {repo_id} / {subfolder} is not available: {filename} could not be fetched "
                f"because {_why_unavailable(error)}. Run it once with internet access, e.g. "
                f"`python -m superpos_core.sae --repo {repo_id} --subfolder {subfolder}`, and the files are kept in "
                f"the Hugging Face cache ({hf_constants.HF_HUB_CACHE}); from then on they load offline."
            ) from error
    source = f"{repo_id}/{subfolder}"
    return PretrainedSAE.from_files(saved.read(paths, source, release), source=source)


def fetch_release_sae(
    layer: int, release: PretrainedRelease = GPT2_SMALL_RES_JB, *, local_files_only: bool = False
) -> PretrainedSAE:
    """The catalogued SAE of one layer, e.g. ``fetch_release_sae(8)`` for GPT-2 small's block 8.

    Args:
        layer: the layer (block) whose SAE to load.
        release: a catalogue entry (default: GPT-2 small's residual-stream SAEs).
        local_files_only: look only in the Hugging Face cache (see ``fetch_pretrained_sae``).
    """
    return fetch_pretrained_sae(
        release.repo_id, release.subfolder(layer), local_files_only=local_files_only, release=release
    )
