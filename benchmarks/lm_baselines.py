"""What ``benchmarks/bench_lm.py`` measures the language-model tab against: the course's way and the floors.

The course's SAE is reimplemented here as the course writes it, a plain ``nn.Module`` trained full-batch
with autograd, Adam and StepLR, so that ``sae.train_course_sae`` can be timed against it on the same data
from the same initial weights. The floors are the least work each step could do: a bare forward pass
returning every hidden state, and the bare product of the tokens with a pretrained SAE's encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from superpos_core import sae

# --- the course's SAE: the reference we compare with ------------------------------------------------


class CourseSAE(nn.Module):
    """The course's sparse autoencoder: Linear + ReLU to the features, Linear back."""

    def __init__(self, d_in: int, n_features: int):
        super().__init__()
        self.encoder = nn.Linear(d_in, n_features)
        self.decoder = nn.Linear(n_features, d_in)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.encoder(x))  # (T, n_features)
        return self.decoder(features), features  # (T, d_in), (T, n_features)


def course_sae_loop(x: torch.Tensor, config: sae.CourseSAEConfig = sae.CourseSAEConfig()) -> list[float]:
    """The course's training: full batch, autograd, Adam, StepLR, the loss of every epoch kept for its plot."""
    torch.manual_seed(config.seed)  # the same initial weights as ours: SparseAutoencoder draws as nn.Linear does
    model = CourseSAE(x.shape[1], config.n_features)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_size, gamma=config.lr_gamma)
    losses = []
    for _ in range(config.epochs):
        reconstruction, features = model(x)
        loss = nn.functional.mse_loss(reconstruction, x) + config.l1_weight * features.abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


# --- the floors ----------------------------------------------------------------------------------------


@torch.no_grad()
def bare_forward(model: nn.Module, input_ids: torch.Tensor, **extra) -> object:
    """The floor: one forward pass returning every hidden state, nothing else."""
    return model(input_ids=input_ids, output_hidden_states=True, **extra)


@torch.inference_mode()
def bare_product(x: torch.Tensor, W_enc: torch.Tensor) -> torch.Tensor:
    """The floor of encoding: the (T, d_in) x (d_in, d_sae) product alone, 75 MB of weights read."""
    return x @ W_enc  # (T, d_sae)
