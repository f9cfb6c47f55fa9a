"""Datasets from other packages: the contract, checked when the plugin is loaded and when it loads.

A dataset plugin is an nsr_tune.data.Dataset (or a function of no arguments that returns one),
offered through the entry-point group `nsr_tune.datasets` or named `package.module:attribute`.
Its `load(config, data_dir, progress)` returns a Loaded whose `splits` is a SplitData of
BeatSet or RecordSet parts with the dataset's classes, the structure the built-in datasets
give: inputs (N, leads, L), labels, a record (patient) id per sample.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence

from nsr_tune.data._beats import BeatSet
from nsr_tune.data._cpsc import RecordSet
from nsr_tune.data._spec import Dataset, Loaded
from nsr_tune.data._splits import SplitData
from nsr_tune.errors import PluginError
from nsr_tune.plugins import load_plugin

__all__ = ["check_loaded", "plugin_dataset"]


def plugin_dataset(name: str, *, builtins: Sequence[str] = ()) -> Dataset:
    """The plugin dataset `name`, its contract checked; PluginError names what is missing."""
    plugin = load_plugin("dataset", name, builtins=builtins)
    obj = plugin.obj
    if inspect.isfunction(obj):
        obj = obj()
    if not isinstance(obj, Dataset):
        raise PluginError(
            f"dataset {name!r}: {plugin.target} is a {type(obj).__name__}, not an nsr_tune.data.Dataset "
            "(or a function that returns one)"
        )
    for field in ("classes", "splits", "eps", "quick_eps", "models", "objectives"):
        if not getattr(obj, field):
            raise PluginError(f"dataset {name!r}: its {field} is empty")
    if not callable(obj.load) or not callable(obj.shape):
        raise PluginError(f"dataset {name!r}: load and shape must be functions")
    return dataclasses.replace(obj, name=name, plugin=plugin)


def check_loaded(name: str, spec: Dataset, loaded: object) -> None:
    """What a plugin's `load` returned has the split structure the built-in datasets give."""
    if not isinstance(loaded, Loaded) or not isinstance(loaded.splits, SplitData):
        raise PluginError(
            f"dataset {name!r}: load returned {type(loaded).__name__}, not a Loaded with a SplitData"
        )
    for part in ("train", "val", "test"):
        data = getattr(loaded.splits, part)
        if not isinstance(data, (BeatSet, RecordSet)):
            raise PluginError(
                f"dataset {name!r}: its {part} split is a {type(data).__name__}, not a BeatSet or RecordSet"
            )
        if tuple(data.classes) != tuple(spec.classes):
            raise PluginError(
                f"dataset {name!r}: its {part} split has classes {list(data.classes)}, "
                f"the dataset says {list(spec.classes)}"
            )
