"""One real trial on the bundled MIT-BIH records, timed on a given device (the CUDA path check).

    python benchmarks/gpu_trial.py --device cuda

Trains the paper's CNN with CE and with NSR (beta 0.3) for 3 epochs on the bundled `inter`
training records, then evaluates each with PGD-100 (worst of CE and margin) on up to 300 test
beats per class. Prints per-epoch seconds, evaluation seconds and the headline metrics.
"""

from __future__ import annotations

import argparse
import time

import torch

from nsr_tune.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrialConfig
from nsr_tune.data import load_mitbih, make_splits
from nsr_tune.protocol import PROTOCOLS
from nsr_tune.trial import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default="bundled")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    beats, _ = load_mitbih(args.data_dir)
    splits = make_splits(beats, split="inter")
    print(
        f"device {args.device}: train {len(splits.train)}, val {len(splits.val)}, "
        f"test {len(splits.test)} beats"
    )
    for objective, beta in (("ce", 0.0), ("nsr", 0.3)):
        config = TrialConfig(
            data=DataConfig(split="inter"),
            model=ModelConfig(name="cnn"),
            objective=ObjectiveConfig(name=objective, beta=beta),
            optim=OptimConfig(epochs=args.epochs),
            val_eval=None,
            test_eval=PROTOCOLS["standard"],
        )
        started = time.perf_counter()
        for result in run_trial(config, splits, device=args.device):
            print(
                f"  {objective} epoch {result.epoch}: {result.metrics['epoch_seconds']:.2f} s, "
                f"loss {result.metrics['train_loss']:.4f}, val acc {result.metrics['epoch_val_acc']:.3f}"
            )
        test = result.test
        print(
            f"  {objective}: trial {time.perf_counter() - started:.1f} s (evaluation {test.seconds:.1f} s on "
            f"{test.n} beats); clean {test.clean_acc:.3f}, balanced {test.balanced_acc:.3f}, "
            f"robust@0.05 {test.robust_acc[0.05]:.3f}, AUC {test.robust_auc:.3f}"
        )


if __name__ == "__main__":
    main()
