"""Models from other packages: the contract, checked when the plugin is loaded and when it is built.

A model plugin is a class (or a function) called with keyword arguments only:

    ModelClass(*, in_leads: int, length: int | None, n_classes: int, **knobs) -> nn.Module

`in_leads` and `length` describe the inputs (B, in_leads, length); `length` is None where inputs
vary in length (CPSC2018 records). Every other parameter is a knob, searchable like a built-in
model's, and needs a default of type int, float, bool or str: the default gives the knob's type.
The module returns logits (B, n_classes).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from nsr_tune.errors import PluginError
from nsr_tune.models._spec import ModelSpec
from nsr_tune.plugins import Plugin, load_plugin

__all__ = ["ModelPlugin", "check_plugin_output", "plugin_model_spec"]

_SHAPE_ARGS = ("in_leads", "length", "n_classes")
_KNOB_TYPES = (bool, int, float, str)
# Samples per input of the contract's test forward where inputs vary in length.
_PROBE_LENGTH = 500


@runtime_checkable
class ModelPlugin(Protocol):
    """What nsr-tune calls to build a plugin model (see the module's docstring)."""

    def __call__(self, *, in_leads: int, length: int | None, n_classes: int, **knobs: Any) -> nn.Module: ...


def _knobs(plugin: Plugin) -> dict[str, tuple[type, Any, Any]]:
    what = f"model {plugin.name!r}"
    try:
        signature = inspect.signature(plugin.obj)
    except (TypeError, ValueError) as e:
        raise PluginError(f"{what}: {plugin.target} has no signature to read ({e})") from e
    params = signature.parameters
    missing = [a for a in _SHAPE_ARGS if a not in params]
    if missing:
        raise PluginError(
            f"{what}: {plugin.target} must take the keyword arguments {', '.join(_SHAPE_ARGS)}; "
            f"{', '.join(missing)} missing"
        )
    knobs: dict[str, tuple[type, Any, Any]] = {}
    for p in params.values():
        if p.name in _SHAPE_ARGS or p.kind is p.VAR_KEYWORD:
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL):
            raise PluginError(f"{what}: {plugin.target} takes keyword arguments only; {p.name!r} is not one")
        if p.default is p.empty or type(p.default) not in _KNOB_TYPES:
            raise PluginError(
                f"{what}: knob {p.name!r} of {plugin.target} needs a default of type int, float, bool or "
                f"str, got {'none' if p.default is p.empty else repr(p.default)}"
            )
        knobs[p.name] = (type(p.default), p.default, None)
    return knobs


def plugin_model_spec(name: str, *, builtins: Sequence[str] = ()) -> ModelSpec:
    """The registry's entry for the plugin model `name`; PluginError names what breaks the contract."""
    plugin = load_plugin("model", name, builtins=builtins)
    obj = plugin.obj
    if not callable(obj):
        raise PluginError(f"model {name!r}: {plugin.target} is not a class or function")
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise PluginError(f"model {name!r}: {plugin.target} is a class but not a torch.nn.Module")
    doc = inspect.getdoc(obj) or plugin.target
    return ModelSpec(
        constructor=obj,
        knobs=_knobs(plugin),
        description=doc.splitlines()[0],
        multi_lead=True,
        sized=True,
        plugin=plugin,
    )


def check_plugin_output(name: str, model: Any, *, in_leads: int, length: int | None, n_classes: int) -> None:
    """The contract's forward: the built object is an nn.Module that maps (2, in_leads, length)
    to (2, n_classes) finite logits. Zeros are enough: this checks shapes, not accuracy."""
    if not isinstance(model, nn.Module):
        raise PluginError(f"model {name!r}: built a {type(model).__name__}, not a torch.nn.Module")
    shape = (2, in_leads, length or _PROBE_LENGTH)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, device=device))
    except Exception as e:
        raise PluginError(
            f"model {name!r}: fails on inputs of shape {shape} ({type(e).__name__}: {e})"
        ) from e
    finally:
        model.train(training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PluginError(
            f"model {name!r}: returns {got} for inputs of shape {shape}; the contract is logits "
            f"(B, n_classes) = (2, {n_classes})"
        )
    if not bool(torch.isfinite(out).all()):
        raise PluginError(f"model {name!r}: returns non-finite logits for inputs of shape {shape}")
