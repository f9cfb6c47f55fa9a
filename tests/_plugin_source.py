"""A plugin package that exists only in a temporary directory, for the plugin tests.

`write_plugin(root)` writes `tmpplug/` (a model, an objective, a dataset and broken ones)
under `root`, and with `entry_points=True` the metadata of an installed distribution
`tmpplug-ep` 0.1 that offers them through entry points. `forget_plugin()` drops the package
from sys.modules, so the next test imports its own copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

REG = '''
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class LogitPenaltyConfig:
    gamma: float = 0.01

    def __post_init__(self):
        if not self.gamma >= 0:
            raise ValueError(f"gamma: must be >= 0, got {self.gamma}")


def logit_penalty(model, x, y, *, config: LogitPenaltyConfig, mask, generator):
    """Cross-entropy plus gamma times the mean squared logit (logit squeezing)."""
    z = model(x)
    ce = F.cross_entropy(z, y)
    return ce + config.gamma * z.pow(2).mean(), {"ce": ce.item()}


class TinyNet(nn.Module):
    """A one-hidden-layer MLP over the flattened input."""

    def __init__(self, *, in_leads, length, n_classes, hidden: int = 16, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_leads * length, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, x):
        return self.net(x) * self.scale


class NoShape(nn.Module):
    def __init__(self, *, n_classes, width: int = 4):
        super().__init__()


class NoDefault(nn.Module):
    def __init__(self, *, in_leads, length, n_classes, width):
        super().__init__()


class NotAModule:
    def __init__(self, *, in_leads, length, n_classes):
        pass


class WrongOutput(nn.Module):
    def __init__(self, *, in_leads, length, n_classes):
        super().__init__()
        self.lin = nn.Linear(in_leads * length, 3)

    def forward(self, x):
        return self.lin(x.flatten(1))


def untyped(model, x, y, *, config, mask, generator):
    return model(x).sum(), {}


@dataclass
class Mutable:
    gamma: float = 0.1


def mutable_config(model, x, y, *, config: Mutable, mask, generator):
    return model(x).sum(), {}


def no_generator(model, x, y, *, config: LogitPenaltyConfig, mask):
    return model(x).sum(), {}


def returns_none(model, x, y, *, config: LogitPenaltyConfig, mask, generator):
    return None


NOT_A_DATASET = {"name": "x"}
'''

DATA = '''
import dataclasses

from nsr_tune.data import DATASETS, load_dataset


def _load(config, data_dir, progress):
    """MIT-BIH's records under another name: what a dataset plugin returns, a Loaded."""
    return load_dataset(dataclasses.replace(config, dataset="mitbih"), data_dir, progress=progress)


mitbih_again = dataclasses.replace(DATASETS["mitbih"], name="mitbih_again", load=_load)
# Says four classes, loads beats of the five AAMI classes.
wrong_classes = dataclasses.replace(DATASETS["mitbih"], classes=("N", "S", "V", "F"), load=_load)
not_a_dataset = {"name": "x"}
'''

ENTRY_POINTS = """[nsr_tune.models]
tiny = tmpplug.reg:TinyNet

[nsr_tune.datasets]
mitbih_again = tmpplug.data:mitbih_again

[nsr_tune.objectives]
logit_penalty = tmpplug.reg:logit_penalty
"""


def write_plugin(root: Path, *, entry_points: bool = False) -> Path:
    """Write the package under `root` (and its distribution metadata); returns `root`."""
    pkg = root / "tmpplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A test plugin."""\n')
    (pkg / "reg.py").write_text(REG)
    (pkg / "data.py").write_text(DATA)
    if entry_points:
        meta = root / "tmpplug_ep-0.1.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: tmpplug-ep\nVersion: 0.1\n")
        (meta / "entry_points.txt").write_text(ENTRY_POINTS)
        (meta / "top_level.txt").write_text("tmpplug\n")
    return root


def forget_plugin() -> None:
    for name in [m for m in sys.modules if m == "tmpplug" or m.startswith("tmpplug.")]:
        del sys.modules[name]
