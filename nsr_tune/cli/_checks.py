"""What a command checks before any work: that a flag applies, that --out can be written and
--device exists, and that a refusal names the flag the user typed, not the field behind it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from nsr_tune.errors import ConfigError

# The command-line flag of each configuration field a command builds from its options, so that
# a refusal names what the user typed, not the field behind it.
DATA_FLAGS = {
    "dataset": "--dataset",
    "split": "--split",
    "seed": "--seed",
    "max_train_beats": "--max-train-beats",
    "val_fraction": "--val-fraction",
    "test_fraction": "--test-fraction",
    "input": "--input",
    "leads": "--leads",
    "max_len": "--max-len",
    "sample_rate": "--sample-rate",
    "val_per_class": "--val-per-class",
    "test_per_class": "--test-per-class",
    "multi_label": "--multi-label",
    "lead": "--lead",
}
TRAIN_FLAGS = {
    "model": "--model",
    "weight_norm": "--weight-norm",
    "objective": "--objective",
    "beta": "--beta",
    "nsr_eps": "--nsr-eps",
    "focal_gamma": "--focal-gamma",
    "optimizer": "--optimizer",
    "lr": "--lr",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "balance": "--balance",
    "schedule": "--schedule",
}
EVAL_FLAGS = {
    "eps": "--eps",
    "norm": "--norm",
    "steps": "--pgd-steps",
    "restarts": "--restarts",
    "attack_loss": "--attack-loss",
    "per_class_cap": "--eval-beats",
    "seed": "--eval-seed",
    "attacks": "--attacks",
    "each_attack": "--each-attack",
    "protocol": "--protocol",
    "dataset": "--dataset",
}


@contextlib.contextmanager
def flags_named(flags: Mapping[str, str]) -> Iterator[None]:
    """Inside: a ConfigError that names a configuration field names its flag instead
    (`per_class_cap: ...` becomes `--eval-beats: ...`, `model.width: ...` `--knob width: ...`)."""
    try:
        yield
    except ConfigError as e:
        field, sep, rest = str(e).partition(": ")
        if not sep:
            raise
        if field.startswith("model.") and "model" in flags:
            raise ConfigError(f"--knob {field.removeprefix('model.')}: {rest}") from e
        if field in flags:
            raise ConfigError(f"{flags[field]}: {rest}") from e
        raise


def refuse_unless(applies: bool, flag: str, why: str) -> None:
    """A flag that does not apply is refused, naming it, rather than recorded as if it meant something."""
    if not applies:
        raise ConfigError(f"{flag}: {why}")


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path("/")


def _writable_dir(directory: Path, flag: str, target: Path) -> None:
    """A file can be made in `directory` (its nearest existing ancestor, if it does not exist yet):
    tried with a temporary directory that is removed at once, so nothing stays behind."""
    base = _nearest_existing(directory)
    if not base.is_dir():
        raise ConfigError(f"{flag}: {target} cannot be written: {base} is a file")
    try:
        probe = tempfile.mkdtemp(prefix=".nsr-tune-write-test-", dir=base)
    except OSError as e:
        raise ConfigError(f"{flag}: {target} cannot be written ({e.strerror or e})") from None
    os.rmdir(probe)


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """An output directory that exists as a directory, or can be made; nothing is created yet."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag}: {out} exists and is not a directory")
    _writable_dir(out, flag, out)
    return out


def check_out_file(path: str | Path, flag: str = "--out") -> Path:
    """An output file whose directory can be written, and that is not a directory itself."""
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{flag}: {out} is a directory; name the file to write")
    _writable_dir(out.parent, flag, out)
    return out


def check_device(name: str | None) -> str | None:
    """--device, checked before any data is read: a torch device this build and machine have."""
    if name is None:
        return None
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"--device: {name!r} is not a torch device such as cpu, cuda or cuda:1 ({e})"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA device is visible"
            )
            raise ConfigError(f"--device: {name} is not available here ({why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device: {name} does not exist ({torch.cuda.device_count()} CUDA devices here)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device: {name} is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device: {name} is not a device nsr-tune runs on (cpu, cuda, mps)")
    return name
