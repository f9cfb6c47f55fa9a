"""The model registry: each name maps to a constructor and the knobs it accepts, with the checks
of a model's knobs and of the inputs it can take."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from nsr_tune.errors import ConfigError, PluginError
from nsr_tune.models._cnn import PaperCNN, pooled_length
from nsr_tune.models._mlp import PaperMLP
from nsr_tune.models._plugins import check_plugin_output, plugin_model_spec
from nsr_tune.models._resnet1d import ResNet1d
from nsr_tune.models._resnet18 import ResNet18
from nsr_tune.models._rr import MAX_BLOCKS as _RRCNN_MAX_BLOCKS
from nsr_tune.models._rr import MIN_LOOKBACK_S, RRCNN, lookback_samples
from nsr_tune.models._spec import ModelSpec
from nsr_tune.models._transformer import BeatTransformer

__all__ = [
    "MODELS",
    "build_model",
    "check_model_input",
    "check_model_knobs",
    "model_spec",
]

#: Samples per beat when no width is given: the paper's 187-sample beat.
_DEFAULT_LEN = 187


MODELS: Mapping[str, ModelSpec] = {
    "cnn": ModelSpec(
        PaperCNN,
        {"width": (int, 32, 1), "blocks": (int, 5, 1)},
        "the paper's MIT-BIH CNN: 5 residual conv blocks with max-pooling",
        sized=True,
    ),
    "mlp": ModelSpec(
        PaperMLP,
        {"hidden": (int, 128, 1), "depth": (int, 3, 1), "bottleneck": (int, 32, 1)},
        "the paper's MLP 187-128-128-128-32-5 (the input layer as wide as the beat)",
        sized=True,
    ),
    "resnet1d": ModelSpec(
        ResNet1d,
        {
            "width": (int, 16, 4),
            "stages": (int, 3, 1),
            "blocks_per_stage": (int, 2, 1),
            "kernel": (int, 7, 1),
        },
        "a 1-D ResNet without batch norm, width doubling per stage, global average pooling",
    ),
    "transformer": ModelSpec(
        BeatTransformer,
        {"patch": (int, 11, 1), "d_model": (int, 64, 8), "depth": (int, 2, 1), "heads": (int, 4, 1)},
        "a small Transformer over non-overlapping patches of the beat",
        sized=True,
    ),
    "rrcnn": ModelSpec(
        RRCNN,
        {
            "width": (int, 32, 1),
            "blocks": (int, 6, 1),
            "rr_hidden": (int, 16, 1),
            "irregularity": (int, 0, 0),
            "template": (int, 0, 0),
            "fusion_by_shape": (int, 0, 0),
            "own_beat": (int, 0, 0),
        },
        "the paper's CNN on the 1.5 s around the beat, beside RR ratios it measures in the signal "
        "(a QRS detector over the look-back; needs `context`, `lookback` or `lookback30` inputs); "
        "S against N by rhythm",
        sized=True,
    ),
    "resnet18": ModelSpec(
        ResNet18,
        {"width": (int, 64, 4), "blocks": (int, 2, 1), "kernel": (int, 7, 1)},
        "the paper's CPSC2018 1-D ResNet-18 (stem k11 s2, basic blocks to 8x width), masked pooling; "
        "width 16 and blocks 1 make a CPU-sized variant",
        multi_lead=True,
    ),
}


def model_spec(name: str) -> ModelSpec:
    """The built-in model `name`, or the plugin of that name (an entry point of `nsr_tune.models`
    or `package.module:attribute`), its contract checked; ConfigError names what is wrong."""
    if name in MODELS:
        return MODELS[name]
    return plugin_model_spec(name, builtins=tuple(MODELS))


def _knob_ok(kind: type, value: Any, low: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    return ok and (low is None or value >= low)


def check_model_knobs(name: str, knobs: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the model or knob that is wrong."""
    spec = model_spec(name).knobs
    for key, value in knobs.items():
        if key not in spec:
            raise ConfigError(
                f"model.{key}: not a knob of {name!r}; its knobs are {', '.join(spec) or 'none'}"
            )
        kind, _, low = spec[key]
        if not _knob_ok(kind, value, low):
            floor = "" if low is None else f" >= {low}"
            raise ConfigError(f"model.{key}: must be a {kind.__name__}{floor}, got {value!r}")
    if name == "transformer":
        d_model = knobs.get("d_model", spec["d_model"][1])
        heads = knobs.get("heads", spec["heads"][1])
        if d_model % heads:
            raise ConfigError(f"model.d_model: {d_model} is not divisible by model.heads={heads}")
    if name == "resnet18" and knobs.get("kernel", 7) % 2 == 0:
        raise ConfigError(f"model.kernel: must be odd, so a block keeps the length; got {knobs['kernel']}")


def check_model_input(name: str, knobs: Mapping[str, Any], in_len: int | None) -> None:
    """Raise ConfigError when the model cannot take inputs of `in_len` samples (None: 187, the
    paper's beat, for the single-lead models; any length for the multi-lead ones)."""
    if name == "cnn":
        # Each block pools with kernel 5 and stride 2: 187 survives 5 of them, 375 6, 688 7.
        length = in_len or _DEFAULT_LEN
        blocks = knobs.get("blocks", MODELS["cnn"].knobs["blocks"][1])
        most, left = 0, length
        while pooled_length(left) >= 1:
            left, most = pooled_length(left), most + 1
        if blocks > most:
            raise ConfigError(f"model.blocks: at most {most} for {length}-sample beats, got {blocks}")
    if name == "rrcnn":
        _check_rrcnn_input(knobs, in_len)


def _check_rrcnn_input(knobs: Mapping[str, Any], in_len: int | None) -> None:
    length = in_len or _DEFAULT_LEN
    if lookback_samples(length) < MIN_LOOKBACK_S * 125:  # beats are at 125 Hz (data.FS)
        raise ConfigError(
            f"model: 'rrcnn' measures RR intervals over a look-back of at least {MIN_LOOKBACK_S} s, "
            f"and {length}-sample beats have none that long; "
            "use the input `context`, `lookback` or `lookback30`"
        )
    blocks = knobs.get("blocks", MODELS["rrcnn"].knobs["blocks"][1])
    if blocks > _RRCNN_MAX_BLOCKS:
        raise ConfigError(
            f"model.blocks: at most {_RRCNN_MAX_BLOCKS} for rrcnn (it convolves 375 samples), got {blocks}"
        )


def build_model(
    name: str,
    knobs: Mapping[str, Any] | None = None,
    *,
    n_classes: int = 5,
    in_leads: int = 1,
    in_len: int | None = None,
) -> nn.Module:
    """The model `name` with its knobs; `in_len`: samples per input for the single-lead models
    (None: the paper's 187)."""
    knobs = dict(knobs or {})
    check_model_knobs(name, knobs)
    check_model_input(name, knobs, in_len)
    spec = model_spec(name)
    full = {key: knobs.get(key, default) for key, (_, default, _) in spec.knobs.items()}
    if spec.plugin is not None:
        return _build_plugin(name, spec, full, n_classes=n_classes, in_leads=in_leads, in_len=in_len)
    if spec.multi_lead:
        full["in_leads"] = in_leads
    elif in_leads != 1:
        raise ConfigError(f"model: {name!r} takes single-lead beats, not {in_leads} leads")
    if spec.sized:
        full["length"] = in_len or _DEFAULT_LEN
    return spec.constructor(n_classes=n_classes, **full)


def _build_plugin(
    name: str, spec: ModelSpec, knobs: Mapping[str, Any], *, n_classes: int, in_leads: int, in_len: int | None
) -> nn.Module:
    try:
        model = spec.constructor(n_classes=n_classes, in_leads=in_leads, length=in_len, **knobs)
    except (TypeError, ValueError) as e:
        raise PluginError(
            f"model {name!r}: cannot be built for inputs ({in_leads}, {in_len}) and {n_classes} classes "
            f"with knobs {dict(knobs)} ({e})"
        ) from e
    check_plugin_output(name, model, in_leads=in_leads, length=in_len, n_classes=n_classes)
    return model
