"""Model and checkpoint files: written atomically, read with `torch.load(weights_only=True)`.

`weights_only=True` never unpickles arbitrary objects, so a file from someone else cannot run
code; a file that is not ours is refused with a CheckpointError that names it.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nsr_tune._io import atomic_write
from nsr_tune.config import TrialConfig
from nsr_tune.errors import CheckpointError, ConfigError
from nsr_tune.trial import CHECKPOINT_FORMAT, check_trial, new_model

__all__ = ["MODEL_FORMAT", "load_checkpoint", "load_model_file", "save_model_file", "save_state"]

MODEL_FORMAT = "nsr-tune/model/1"


def save_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """torch.save to a temp file beside `path`, then rename: a crash never leaves half a file."""
    return atomic_write(path, lambda fh: torch.save(dict(state), fh))


def _load(path: str | Path, expected: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # A file that is not a torch file can fail in any of these ways inside the unpickler.
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        AttributeError,
        KeyError,
        IndexError,
        TypeError,
    ) as e:
        # Torch's own message would advise loading with weights_only=False: never, for a file that
        # may come from someone else. The type of the failure says enough.
        raise CheckpointError(f"{path}: not an nsr-tune file, or damaged ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != expected:
        found = state.get("format") if isinstance(state, dict) else None
        what = f"format {found!r}" if found else "a torch file without nsr-tune's format tag"
        raise CheckpointError(f"{path}: expected an nsr-tune file of format {expected!r}, found {what}")
    return state


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint for `run_trial(resume=...)`."""
    return _load(path, CHECKPOINT_FORMAT)


def save_model_file(path: str | Path, *, config: TrialConfig, model: nn.Module | Mapping[str, Any]) -> Path:
    state = model.state_dict() if isinstance(model, nn.Module) else model
    return save_state(
        path,
        {
            "format": MODEL_FORMAT,
            "config": config.to_dict(),
            "model_state": {k: v.detach().cpu() for k, v in state.items()},
        },
    )


def load_model_file(path: str | Path) -> tuple[TrialConfig, nn.Module]:
    """Rebuild the model saved by `save_model_file` (or taken from a training checkpoint)."""
    path = Path(path)
    try:
        state = _load(path, MODEL_FORMAT)
    except CheckpointError:
        state = _load(path, CHECKPOINT_FORMAT)
    try:
        config = check_trial(TrialConfig.from_dict(state["config"]))
    except (KeyError, ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: its config is unreadable: {e}") from e
    model = new_model(config)
    try:
        model.load_state_dict(state["model_state"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its weights do not fit model {config.model.name!r}: {e}") from e
    return config, model.eval()
