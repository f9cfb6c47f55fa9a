"""Running one trial: train a model epoch by epoch, then evaluate it; checkpoints to resume from.

`run_trial` is an iterator of per-epoch results, so a CLI, a test or a Ray Tune trainable can
each drive it and decide what to do with every epoch (print it, report it, checkpoint it).
It touches no global random state: the model is initialised inside `torch.random.fork_rng` and
every other draw comes from the trial's own generator, whose state goes into the checkpoint.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.attacks import padding_mask
from nsr_tune.config import TrialConfig
from nsr_tune.data import BeatSet, RecordSet, SplitData
from nsr_tune.errors import CheckpointError, ConfigError
from nsr_tune.evaluation.batching import predict_logits, predict_samples
from nsr_tune.evaluation.result import EvalResult
from nsr_tune.evaluation.run import evaluate, plan
from nsr_tune.evaluation.scores import balanced_classes_for, mean_recall
from nsr_tune.metrics import objective_names
from nsr_tune.models import normalize_units_
from nsr_tune.objectives import objective_fn
from nsr_tune.trial._registries import check_trial, new_model

__all__ = ["CHECKPOINT_FORMAT", "EpochResult", "pick_device", "run_trial", "subsample_train"]


log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "nsr-tune/checkpoint/1"


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    epochs: int
    metrics: Mapping[str, float]
    checkpoint: Mapping[str, Any]  # the state after this epoch; see `run_trial(resume=...)`
    final: bool = False
    diverged: bool = False
    val: EvalResult | None = None
    test: EvalResult | None = None
    history: tuple[Mapping[str, float], ...] = field(default_factory=tuple)


def pick_device(device: str | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def subsample_train(beats: BeatSet | RecordSet, *, max_beats: int | None, seed: int) -> BeatSet | RecordSet:
    """A seeded subset of `max_beats` samples with the class proportions of `beats`."""
    if max_beats is None or max_beats >= len(beats):
        return beats
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(len(beats.classes)):
        idx = np.flatnonzero(beats.y == c)
        if len(idx) == 0:
            continue
        # At least one beat per class present, so a small subset keeps every class.
        n = max(1, round(max_beats * len(idx) / len(beats)))
        picks.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    return beats.subset(np.sort(np.concatenate(picks)))


def _epoch_order(
    y: torch.Tensor, *, balance: str, n_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Indices of one epoch's samples: a permutation, or a class-balanced draw of the same size."""
    if balance == "none":
        return torch.randperm(len(y), generator=generator)
    counts = torch.bincount(y, minlength=n_classes).double()
    weights = (1.0 / counts.clamp_min(1))[y]  # every class weighs the same in total
    return torch.multinomial(weights, len(y), replacement=True, generator=generator)


# Samples of different lengths are batched by length: the epoch's order is cut into windows of
# this many batches, each window sorted by length and cut into batches, and the batches shuffled.
# A batch is padded to its longest sample, so similar lengths waste little compute on padding.
_BUCKET_BATCHES = 16


def _batches(
    order: torch.Tensor, lengths: np.ndarray | None, bs: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """The epoch's batches of sample indices, bucketed by length when `lengths` is given."""
    if lengths is None:
        return [order[i : i + bs] for i in range(0, len(order), bs)]
    out: list[torch.Tensor] = []
    window = bs * _BUCKET_BATCHES
    for w in range(0, len(order), window):
        part = order[w : w + window]
        part = part[torch.from_numpy(np.argsort(lengths[part.numpy()], kind="stable"))]
        out += [part[i : i + bs] for i in range(0, len(part), bs)]
    return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class _Training:
    """A trial's model, optimiser, objective and generator, and its training samples."""

    def __init__(self, config: TrialConfig, data: SplitData, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.train = subsample_train(data.train, max_beats=config.data.max_train_beats, seed=config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = new_model(config).to(device)
        self.optim = _make_optimizer(self.model, config)
        self.generator = torch.Generator().manual_seed(config.seed)  # epoch order and attack starts (CPU)
        self.objective = objective_fn(config.objective.name)
        # Batches are built from the training set as they are needed (padded to their longest
        # sample), so a set of long records is never held padded in memory. torch.tensor copies:
        # arrays from Ray's object store are read-only.
        self.y = torch.tensor(self.train.y)  # (N,)
        # What the loss is taken against: class indices, or label sets (N, K) for multi-label data.
        self.targets = torch.tensor(self.train.targets) if self.train.multi_label else self.y
        self.lengths = self.train.length if self.train.variable_length else None

    def epoch(self, epoch: int, *, progress: bool) -> tuple[dict[str, float], bool]:
        """Train one epoch: the train_* metrics, and whether a loss stopped being finite."""
        config, model = self.config, self.model
        model.train()
        order = _epoch_order(
            self.y, balance=config.optim.balance, n_classes=len(self.train.classes), generator=self.generator
        )
        sums: dict[str, float] = {}
        n_seen = n_correct = 0
        batches = _batches(order, self.lengths, config.optim.batch_size, self.generator)
        bar = tqdm(
            batches, desc=f"epoch {epoch + 1}/{config.optim.epochs}", disable=not progress, leave=False
        )
        for idx in bar:
            out = self._step(idx)
            if out is None:
                bar.close()
                return {}, True
            n = len(idx)
            n_seen += n
            n_correct += out.correct
            for k, v in {"loss": out.loss.item(), **out.logs}.items():
                sums[k] = sums.get(k, 0.0) + v * n
            bar.set_postfix(loss=f"{sums['loss'] / n_seen:.4f}")
        bar.close()
        metrics = {f"train_{k}": v / max(n_seen, 1) for k, v in sums.items()}
        metrics["train_acc"] = n_correct / max(n_seen, 1)
        return metrics, not _finite(model)

    def _step(self, idx: torch.Tensor) -> _Step | None:
        """One optimiser step on the samples `idx`; None where the loss is not finite."""
        config, model = self.config, self.model
        if config.model.weight_norm:
            normalize_units_(model)
        xb_np, lb_np = self.train.inputs(idx.numpy())
        xb = torch.tensor(xb_np, device=self.device)  # (B, leads, L)
        yb = self.targets[idx].to(self.device)  # (B,) or (B, K)
        mask = padding_mask(xb, torch.from_numpy(lb_np))  # (B, 1, L)
        out = self.objective(model, xb, yb, config=config.objective, mask=mask, generator=self.generator)
        if not torch.isfinite(out.loss):
            return None
        self.optim.zero_grad(set_to_none=True)
        out.loss.backward()
        if config.optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        self.optim.step()
        if self.train.multi_label:  # the whole label set right
            correct = int(((out.logits > 0) == yb.bool()).all(dim=1).sum())
        else:
            correct = int((out.logits.argmax(dim=1) == yb).sum())
        return _Step(out.loss, out.logs, correct)


@dataclass(frozen=True)
class _Step:
    loss: torch.Tensor
    logs: Mapping[str, float]
    correct: int


def _epoch_check(
    model: nn.Module, data: SplitData, config: TrialConfig, *, last: bool, device: torch.device
) -> dict[str, float]:
    """A cheap clean check on the whole validation split after every epoch, for progress bars and
    curves. The searcher's objectives come from `val_eval` after the last epoch."""
    classes = balanced_classes_for(data.split, data.val.classes)
    if data.val.multi_label:
        val_sets = predict_logits(model, data.val, device=device) > 0
        val_correct = (val_sets == data.val.targets.astype(bool)).all(axis=1)
    else:
        val_pred = predict_samples(model, data.val, device=device)
        val_correct = val_pred == data.val.y
        if last and (collapse := _collapse(val_pred, data.val.y, classes, data.val.classes)):
            log.warning("after %d epochs %s", config.optim.epochs, collapse)
    return {
        "epoch_val_acc": float(val_correct.mean()),
        "epoch_val_balanced_acc": mean_recall(val_correct, data.val.y, classes, data.val.classes),
    }


def _rung_metrics(
    model: nn.Module, data: SplitData, config: TrialConfig, device: torch.device
) -> dict[str, float]:
    """The early-stopping scheduler's scores at a rung: the search objectives' kinds, measured
    cheaply on a fixed subset (the rung protocol's own seed and per-class cap)."""
    rung = evaluate(model, data.val, config=config.rung_eval, split=data.split, device=device)
    kinds = set(objective_names(config.rung_eval.eps, part="rung"))
    return {k: v for k, v in rung.flat_metrics("rung").items() if k in kinds}


def run_trial(
    config: TrialConfig,
    data: SplitData,
    *,
    resume: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    surrogate: nn.Module | None = None,
    nstdb: Mapping[str, np.ndarray] | None = None,
) -> Iterator[EpochResult]:
    """Train `config` on `data.train`, yielding after every epoch; evaluate after the last.

    The last result (`final=True`) carries `val` (under `config.val_eval`, if set) and `test`
    (under `config.test_eval`, if set). `surrogate` and `nstdb` go to `evaluate`: the transfer
    attack's surrogate model and the noise stress test's records. A loss, gradient or weight
    that stops being finite ends the trial early with `diverged=True` and the last finite
    metrics. The config is checked against the registries first (`check_trial`).
    """
    config = check_trial(config)
    device = pick_device(str(device) if device is not None else None)
    t = _Training(config, data, device)
    start_epoch, history = 0, []
    if resume is not None:
        start_epoch, history = _restore(resume, config, t.model, t.optim, t.generator)
        log.info("resuming after epoch %d of %d", start_epoch, config.optim.epochs)
    epochs = config.optim.epochs
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        lr = _set_lr(t.optim, config, epoch)
        metrics, diverged = t.epoch(epoch, progress=progress)
        if diverged:
            log.warning("trial diverged in epoch %d: non-finite loss or weights", epoch + 1)
            last = dict(history[-1]) if history else {}
            yield EpochResult(epoch + 1, epochs, last, {}, final=True, diverged=True, history=tuple(history))
            return
        if config.model.weight_norm:
            normalize_units_(t.model)  # evaluate the model as it was trained: with unit rows
        t.model.eval()
        final = epoch + 1 == epochs
        metrics.update(_epoch_check(t.model, data, config, last=final, device=device))
        metrics.update(epoch=float(epoch + 1), epoch_seconds=time.perf_counter() - started, lr=lr)
        if epoch + 1 in config.rung_epochs and config.rung_eval is not None:
            metrics.update(_rung_metrics(t.model, data, config, device))
        history.append(metrics)
        parts = {}
        for name, part, ev in (("val", data.val, config.val_eval), ("test", data.test, config.test_eval)):
            if final and ev is not None:
                log.info("evaluating on the %s split: %s", name, plan(ev))
                parts[name] = evaluate(
                    t.model,
                    part,
                    config=ev,
                    split=data.split,
                    device=device,
                    progress=progress,
                    surrogate=surrogate,
                    nstdb=nstdb,
                )
        yield EpochResult(
            epoch=epoch + 1,
            epochs=epochs,
            metrics=metrics,
            checkpoint=_state(config, t.model, t.optim, t.generator, epoch + 1, history),
            final=final,
            val=parts.get("val"),
            test=parts.get("test"),
            history=tuple(history),
        )


def _collapse(
    pred: np.ndarray, y: np.ndarray, classes: Sequence[str], all_classes: Sequence[str]
) -> str | None:
    """What is wrong, where predictions on `y` (indices into `all_classes`) are no better than
    chance over `classes`: a model that calls (nearly) every beat one class. A large
    regulariser weight can do this, since a constant model has no input gradient to penalise."""
    correct = pred == y
    balanced = mean_recall(correct, y, classes, all_classes)
    present = [c for c in classes if (y == list(all_classes).index(c)).any()]
    if not present or balanced > 1.1 / len(present):
        return None
    top = int(np.bincount(pred, minlength=len(all_classes)).argmax())
    return (
        f"the model is at chance on the validation split: balanced accuracy {balanced:.3f} over "
        f"{len(present)} classes (chance {1 / len(present):.3f}), {np.mean(pred == top):.0%} of the "
        f"beats called {all_classes[top]}. It has collapsed onto one class; with a regulariser "
        "(nsr, nsr_ce, jacobian) try a smaller beta, or another seed"
    )


def _make_optimizer(model: nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
    # Adamax: the optimiser of the paper's MIT-BIH scripts (50 epochs, lr 1e-3, batch 128).
    kind = {"adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax}.get(o.optimizer, torch.optim.Adam)
    return kind(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def _lr_factor(schedule: str, epochs: int) -> Callable[[int], float]:
    """The learning rate of epoch e (0-based) as a factor of the initial one."""
    if schedule == "cosine":
        return lambda e: 0.5 * (1.0 + math.cos(math.pi * e / epochs))
    if schedule == "step":
        return lambda e: 0.1 ** ((e >= epochs // 2) + (e >= (3 * epochs) // 4))
    return lambda e: 1.0


def _set_lr(optim: torch.optim.Optimizer, config: TrialConfig, epoch: int) -> float:
    """Set the learning rate of `epoch` (0-based) from the schedule; a function of the epoch
    alone, so a resumed trial continues on the same curve without a scheduler's state."""
    lr = config.optim.lr * _lr_factor(config.optim.schedule, config.optim.epochs)(epoch)
    for group in optim.param_groups:
        group["lr"] = lr
    return lr


def _state(
    config: TrialConfig,
    model: nn.Module,
    optim: torch.optim.Optimizer,
    generator: torch.Generator,
    epoch: int,
    history: list[dict[str, float]],
) -> dict[str, Any]:
    # Only tensors and plain data, so it loads with torch.load(weights_only=True).
    return {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "epoch": epoch,
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        # A copy: state_dict() holds the optimiser's live tensors, which the next epoch changes
        # in place, and a checkpoint must stay the state after its own epoch.
        "optim_state": copy.deepcopy(optim.state_dict()),
        "generator_state": generator.get_state(),
        "history": [dict(h) for h in history],
    }


def _restore(
    state: Mapping[str, Any],
    config: TrialConfig,
    model: nn.Module,
    optim: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[int, list[dict[str, float]]]:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"resume: not an nsr-tune checkpoint (format {state.get('format')!r})")
    saved = state.get("config")
    # Compared as configs, not dicts: a checkpoint written before a field with a default
    # existed still belongs to the same trial.
    try:
        same = isinstance(saved, Mapping) and check_trial(TrialConfig.from_dict(saved)) == config
    except ConfigError:
        same = False
    if not same:
        raise CheckpointError("resume: the checkpoint was written by a trial with a different config")
    try:
        model.load_state_dict(state["model_state"])
        optim.load_state_dict(state["optim_state"])
        generator.set_state(state["generator_state"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"resume: the checkpoint does not fit this model: {e}") from e
    return int(state["epoch"]), [dict(h) for h in state.get("history", [])]
