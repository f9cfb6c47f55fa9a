"""One trial: train a model on real beats, then evaluate it. Plain torch: no Ray, no MLflow.

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
from nsr_tune.evaluation import (
    EvalResult,
    balanced_classes_for,
    evaluate,
    mean_recall,
    predict_logits,
    predict_samples,
)
from nsr_tune.metrics import objective_names
from nsr_tune.models import normalize_units_
from nsr_tune.objectives import OBJECTIVES

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
    metrics.
    """
    device = pick_device(str(device) if device is not None else None)
    train = subsample_train(data.train, max_beats=config.data.max_train_beats, seed=config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = config.build_model().to(device)
    optim = _make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)  # epoch order and attack starts (CPU)
    objective = OBJECTIVES[config.objective.name]
    start_epoch, history = 0, []
    if resume is not None:
        start_epoch, history = _restore(resume, config, model, optim, generator)
        log.info("resuming after epoch %d of %d", start_epoch, config.optim.epochs)

    # Batches are built from the training set as they are needed (padded to their longest
    # sample), so a set of long records is never held padded in memory. torch.tensor copies:
    # arrays from Ray's object store are read-only.
    y_all = torch.tensor(train.y)  # (N,)
    # What the loss is taken against: class indices, or label sets (N, K) for multi-label data.
    multi = train.multi_label
    targets = torch.tensor(train.targets) if multi else y_all
    lengths = train.length if train.variable_length else None
    classes = balanced_classes_for(data.split, data.val.classes)
    epochs = config.optim.epochs
    bs = config.optim.batch_size

    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        lr = _set_lr(optim, config, epoch)
        model.train()
        order = _epoch_order(
            y_all, balance=config.optim.balance, n_classes=len(train.classes), generator=generator
        )
        sums: dict[str, float] = {}
        n_seen, n_correct, diverged = 0, 0, False
        batches = _batches(order, lengths, bs, generator)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for idx in bar:
            if config.model.weight_norm:
                normalize_units_(model)
            xb_np, lb_np = train.inputs(idx.numpy())
            xb = torch.tensor(xb_np, device=device)  # (B, leads, L)
            yb = targets[idx].to(device)  # (B,) or (B, K)
            mask = padding_mask(xb, torch.from_numpy(lb_np))  # (B, 1, L)
            out = objective(model, xb, yb, config=config.objective, mask=mask, generator=generator)
            if not torch.isfinite(out.loss):
                diverged = True
                break
            optim.zero_grad(set_to_none=True)
            out.loss.backward()
            if config.optim.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optim.step()
            n = len(idx)
            n_seen += n
            if multi:  # the whole label set right
                n_correct += int(((out.logits > 0) == yb.bool()).all(dim=1).sum())
            else:
                n_correct += int((out.logits.argmax(dim=1) == yb).sum())
            sums["loss"] = sums.get("loss", 0.0) + out.loss.item() * n
            for k, v in out.logs.items():
                sums[k] = sums.get(k, 0.0) + v * n
            bar.set_postfix(loss=f"{sums['loss'] / n_seen:.4f}")
        bar.close()
        diverged = diverged or not _finite(model)
        if diverged:
            log.warning("trial diverged in epoch %d: non-finite loss or weights", epoch + 1)
            last = dict(history[-1]) if history else {}
            yield EpochResult(
                epoch=epoch + 1,
                epochs=epochs,
                metrics=last,
                checkpoint={},
                final=True,
                diverged=True,
                history=tuple(history),
            )
            return

        if config.model.weight_norm:
            normalize_units_(model)  # evaluate the model as it was trained: with unit rows
        model.eval()
        # A cheap clean check on the whole validation split after every epoch, for progress
        # bars and curves. The searcher's objectives come from `val_eval` after the last epoch.
        if multi:
            val_sets = predict_logits(model, data.val, device=device) > 0
            val_correct = (val_sets == data.val.targets.astype(bool)).all(axis=1)
        else:
            val_pred = predict_samples(model, data.val, device=device)
            val_correct = val_pred == data.val.y
            if epoch + 1 == epochs and (
                collapse := _collapse(val_pred, data.val.y, classes, data.val.classes)
            ):
                log.warning("after %d epochs %s", epochs, collapse)
        metrics = {f"train_{k}": v / max(n_seen, 1) for k, v in sums.items()}
        metrics["train_acc"] = n_correct / max(n_seen, 1)
        metrics["epoch_val_acc"] = float(val_correct.mean())
        metrics["epoch_val_balanced_acc"] = mean_recall(val_correct, data.val.y, classes, data.val.classes)
        metrics["epoch"] = float(epoch + 1)
        metrics["epoch_seconds"] = time.perf_counter() - started
        metrics["lr"] = lr
        if epoch + 1 in config.rung_epochs and config.rung_eval is not None:
            # The early-stopping scheduler's scores at this rung: the search objectives' kinds,
            # measured cheaply on a fixed subset (the eval's own seed and per-class cap).
            rung = evaluate(model, data.val, config=config.rung_eval, split=data.split, device=device)
            kinds = set(objective_names(config.rung_eval.eps, part="rung"))
            metrics.update({k: v for k, v in rung.flat_metrics("rung").items() if k in kinds})
        history.append(metrics)
        final = epoch + 1 == epochs
        val_result = test_result = None
        extra = {"progress": progress, "surrogate": surrogate, "nstdb": nstdb}
        if final and config.val_eval is not None:
            val_result = evaluate(
                model, data.val, config=config.val_eval, split=data.split, device=device, **extra
            )
        if final and config.test_eval is not None:
            test_result = evaluate(
                model, data.test, config=config.test_eval, split=data.split, device=device, **extra
            )
        yield EpochResult(
            epoch=epoch + 1,
            epochs=epochs,
            metrics=metrics,
            checkpoint=_state(config, model, optim, generator, epoch + 1, history),
            final=final,
            val=val_result,
            test=test_result,
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
        same = isinstance(saved, Mapping) and TrialConfig.from_dict(saved) == config
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
