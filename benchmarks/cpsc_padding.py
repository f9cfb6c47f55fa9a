"""Does padding change what the CPSC2018 models say? Logits of real records, unpadded and padded.

    python benchmarks/cpsc_padding.py [--data-dir ../shared/data/cpsc2018]

For every test record (250 Hz, 8 leads) and every model offered for cpsc2018: the record alone,
padded by 1,000 samples, padded to 30,720 samples, and in a batch with the longest test record.
Prints the largest absolute logit difference against the largest logit, for the paper's
ResNet-18 and the CPU variant as built (every residual branch drawn at random, not at zero, so
a leak through a branch would show) and for the CPU variant after 40 epochs of training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "cpsc2018"))
    args = parser.parse_args()

    import numpy as np
    import torch
    from torch.nn import functional as F

    from nsr_tune.config import DataConfig, ModelConfig, OptimConfig, TrialConfig
    from nsr_tune.data import load_dataset
    from nsr_tune.trial import new_model, run_trial

    data = DataConfig(dataset="cpsc2018", sample_rate=250, val_per_class=1, test_per_class=3)
    splits = load_dataset(data, args.data_dir).splits
    test = splits.test
    longest = int(np.argmax(test.length))

    def worst(model: torch.nn.Module) -> tuple[float, float]:
        diff = scale = 0.0
        with torch.no_grad():
            for r in range(len(test)):
                x = torch.from_numpy(test.inputs([r])[0])
                alone = model(x)
                others = [
                    model(F.pad(x, (0, 1000))),
                    model(F.pad(x, (0, max(30_720 - x.shape[-1], 1)))),
                    model(torch.from_numpy(test.inputs([r, longest])[0]))[:1],
                ]
                diff = max(diff, *(float((o - alone).abs().max()) for o in others))
                scale = max(scale, float(alone.abs().max()))
        return diff, scale

    print(
        f"{len(test)} test records at {test.fs} Hz, {test.n_leads} leads, "
        f"{test.length.min()} to {test.length.max()} samples"
    )
    for name, knobs in (("paper ResNet-18", {}), ("CPU variant", {"width": 16, "blocks": 1})):
        config = TrialConfig(data=data, model=ModelConfig(name="resnet18", knobs=knobs))
        torch.manual_seed(0)
        model = new_model(config).eval()
        for block in model.blocks:
            block.conv2.reset_parameters()  # a live branch (a fresh model starts it at zero)
        diff, scale = worst(model)
        print(f"  {name:<16} as built:          max |logit diff| {diff:.2e}, largest |logit| {scale:.3g}")
    config = TrialConfig(
        data=data,
        model=ModelConfig(name="resnet18", knobs={"width": 16, "blocks": 1}),
        optim=OptimConfig(lr=0.003, batch_size=16, epochs=40),
        test_eval=None,
    )
    *_, last = run_trial(config, splits)
    model = new_model(config)
    model.load_state_dict(last.checkpoint["model_state"])
    diff, scale = worst(model.eval())
    print(
        f"  {'CPU variant':<16} after 40 epochs:   max |logit diff| {diff:.2e}, largest |logit| {scale:.3g}"
    )


if __name__ == "__main__":
    main()
