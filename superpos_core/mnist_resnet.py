"""A small ResNet-18 for MNIST, with every module named as torchvision's ResNet names it.

Same layout as ``torchvision.models.resnet18`` (a stem conv, four stages of two BasicBlocks,
1x1 downsample convs, global average pool, fc), so ``layer1.0.conv1`` means the same thing here
as in ResNet-50 and one code path serves both. Narrower (16-32-64-128 channels instead of
64-128-256-512) and with a 3x3 stride-1 stem and no max-pool, because a 28x28 digit would
otherwise shrink to 1x1 before the last stage.

    python -m superpos_core.mnist_resnet --mnist-pkl /path/to/mnist.pkl.gz   # rebuild the weights
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from superpos_core import mnist

WEIGHTS_PATH = mnist.ASSETS / "resnet_mnist.safetensors"
PROVENANCE_PATH = mnist.ASSETS / "resnet_mnist.provenance.json"
WIDTHS = (16, 32, 64, 128)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 convs with batch norm, plus the (projected) input."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class MnistResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = WIDTHS, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)  # (B, 16, 28, 28)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, channels = [], widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2  # 28 -> 28 -> 14 -> 7 -> 4
            stages.append(nn.Sequential(BasicBlock(channels, width, stride), BasicBlock(width, width)))
            channels = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (B, 10)


def load(path=WEIGHTS_PATH, device="cpu") -> MnistResNet:
    """The bundled weights (stored in fp16 to stay small), as float32, in eval mode."""
    model = MnistResNet()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()})
    return model.eval().requires_grad_(False).to(device)


def save(model: MnistResNet, path) -> None:
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def to_input(images: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 digits (N, 28, 28) -> normalised (N, 1, 28, 28), as for the SimpleNet."""
    return mnist.bytes_to_input(images, device).reshape(-1, 1, 28, 28)


@torch.no_grad()
def accuracy(model: nn.Module, digits: mnist.Digits, batch: int = 1000) -> float:
    correct = 0
    for start in range(0, len(digits), batch):
        x = to_input(digits.images[start : start + batch])
        correct += int((model(x).argmax(1) == torch.as_tensor(digits.labels[start : start + batch])).sum())
    return correct / len(digits)


def train(
    data: mnist.MnistSplits, epochs: int = 2, batch_size: int = 128, seed: int = 0, lr: float = 3e-3
) -> tuple[MnistResNet, list[dict]]:
    """Adam with a one-cycle schedule; a private generator seeds init and shuffling."""
    torch.manual_seed(seed)  # module init draws from the global RNG; this script owns the process
    generator = torch.Generator().manual_seed(seed)
    model = MnistResNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(data.train) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    x_all, y_all = to_input(data.train.images), torch.as_tensor(data.train.labels)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(data.train), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        model.eval()
        history.append({"epoch": epoch, "loss": total / len(order), "test_accuracy": accuracy(model, data.test)})
        print(history[-1], flush=True)
    return model, history


def main(argv=None) -> None:
    from superpos_core.build_assets import sha256

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-pkl", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=mnist.ASSETS)
    args = parser.parse_args(argv)
    data = mnist.load_mnist_pickle(args.mnist_pkl)
    started = time.perf_counter()
    model, history = train(data, args.epochs, seed=args.seed)
    weights = args.out / WEIGHTS_PATH.name
    save(model, weights)
    reloaded = load(weights)  # the accuracy reported is that of the fp16 file actually shipped
    provenance = {
        "model": "ResNet-18 layout (torchvision module names), widths 16-32-64-128, 3x3 stem, no max-pool, 20 Conv2d layers",
        "data": "MNIST, 60,000 training digits; accuracy on all 10,000 test digits; " + data.source,
        "recipe": {
            "optimizer": "Adam",
            "max_lr": 3e-3,
            "schedule": "OneCycleLR",
            "batch_size": 128,
            "epochs": args.epochs,
            "normalisation": {"mean": mnist.MEAN, "std": mnist.STD},
            "augmentation": "none",
        },
        "seed": args.seed,
        "test_accuracy": accuracy(reloaded, data.test),
        "history": history,
        "weights_dtype": "float16",
        "sha256": sha256(weights),
        "reproduce": "python -m superpos_core.mnist_resnet --mnist-pkl PATH/mnist.pkl.gz",
        "built_with": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    (args.out / PROVENANCE_PATH.name).write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {weights}: test accuracy {provenance['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
