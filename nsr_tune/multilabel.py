"""The evaluation of a multi-label model (sigmoid outputs, label sets), on CPSC2018 records.

A record is correct when its predicted label set (every class with a logit above 0) equals its
true set, and broken when an attack changes the set. The protocol is the single-label one cut
to what is defined for sets: PGD on the binary cross-entropy of the true set, as a cascade over
eps on the records still correct, and uniform noise of the same size. Per-class sensitivity,
precision and F1 are taken over label columns; `balanced_acc` is the mean per-class
sensitivity, and robust F1 counts a broken record as the set the attack pushed it into.
The attack stops at the first set that differs (one label gained or lost, as a rule), so the
robust F1 is an optimistic bound; the robust exact-match accuracy is the number to trust.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.attacks import MultiLabelPGD, label_sets
from nsr_tune.batching import batches, predict_logits
from nsr_tune.config import EvalConfig, check_multilabel_eval
from nsr_tune.data import RecordSet
from nsr_tune.eval_result import BeatOutcomes, EvalResult, per_label, robust_auc, stratified_cap, uv_per_unit

__all__ = ["evaluate_multilabel"]

log = logging.getLogger(__name__)


def _scores(
    pred: np.ndarray, targets: np.ndarray, classes: tuple[str, ...], balanced: tuple[str, ...]
) -> tuple[float, float]:
    """(mean sensitivity over `balanced` classes present, mean F1 over classes present)."""
    metrics = per_label(pred, targets, classes)
    sens = [metrics[c].sensitivity for c in balanced if metrics[c].support]
    f1 = [m.f1 for m in metrics.values() if m.support]
    return (
        float(np.mean(sens)) if sens else float("nan"),
        float(np.mean(f1)) if f1 else float("nan"),
    )


def evaluate_multilabel(
    model: nn.Module,
    records: RecordSet,
    *,
    config: EvalConfig,
    device: str | torch.device = "cpu",
    progress: bool = False,
    keep_beats: bool = False,
) -> EvalResult:
    check_multilabel_eval(config)
    started = time.perf_counter()
    classes = records.classes
    balanced = config.balanced_classes or tuple(classes)
    sub = records.subset(stratified_cap(records.y, cap=config.per_class_cap, seed=config.seed))
    device = torch.device(device)
    model = model.to(device).eval()
    truth = sub.targets.astype(bool)  # (N, K)
    n = len(sub)
    clean = predict_logits(model, sub, device=device, batch_size=config.batch_size) > 0  # (N, K)
    correct = (clean == truth).all(axis=1)
    adv_sets = clean.copy()  # each record's set under attack so far: clean until broken
    alive = correct.copy()
    generator = torch.Generator(device=device).manual_seed(config.seed)
    robust, robust_bal, robust_f1, noise, eps_uv, survivors = {}, {}, {}, {}, {}, {}
    amp_uv = sub.amp_mv * 1000.0
    bar = tqdm(config.eps, desc=f"multi-label PGD {config.norm}", disable=not progress, leave=False)
    for eps in bar:
        attack = MultiLabelPGD(
            model, eps=eps, steps=config.steps, step_size=config.step_size, norm=config.norm
        )
        noisy_ok = np.zeros(n, dtype=bool)
        for part in batches(np.arange(n), config.batch_size, sub.length):
            x_np, lengths = sub.inputs(part)
            x = torch.from_numpy(x_np).to(device)
            t = torch.from_numpy(sub.targets[part]).to(device)
            lens = torch.from_numpy(lengths).to(device)
            todo = alive[part]
            if todo.any():
                keep = torch.from_numpy(todo).to(device)
                res = attack(x[keep], t[keep], lengths=lens[keep], generator=generator)
                hit = res.broken.cpu().numpy()
                if hit.any():
                    with torch.no_grad():
                        sets = label_sets(model(res.x_adv[res.broken])).cpu().numpy()
                    broken_idx = part[todo][hit]
                    adv_sets[broken_idx] = sets
                    alive[broken_idx] = False
            # Uniform noise of the same size, the floor any attack must beat.
            proj = attack.projection
            mask = (torch.arange(x.shape[-1], device=device)[None, :] < lens[:, None]).to(x.dtype)[:, None]
            with torch.no_grad():
                z = model(x + proj.project(proj.random(x, eps, generator) * mask, eps))
            noisy_ok[part] = (label_sets(z) == t.bool()).all(dim=1).cpu().numpy()
        robust_sets = np.where(alive[:, None], truth, adv_sets)
        robust[eps] = float(alive.mean())
        robust_bal[eps], robust_f1[eps] = _scores(robust_sets, truth, classes, balanced)
        noise[eps] = float(noisy_ok.mean())
        eps_uv[eps] = float(np.median(eps * amp_uv))
        survivors[eps] = alive.copy()
        bar.set_postfix(eps=eps, robust=f"{alive.mean():.3f}")
    bar.close()
    eps_list = list(config.eps)
    clean_acc = float(correct.mean())
    balanced_acc, f1 = _scores(clean, truth, classes, balanced)
    return EvalResult(
        n=n,
        clean_acc=clean_acc,
        balanced_acc=balanced_acc,
        balanced_classes=tuple(balanced),
        per_class=per_label(clean, truth, classes),
        eps=tuple(eps_list),
        norm=config.norm,
        robust_acc=robust,
        robust_balanced_acc=robust_bal,
        noise_acc=noise,
        eps_uv=eps_uv,
        robust_auc=robust_auc(eps_list, clean_acc, [robust[e] for e in eps_list]),
        robust_balanced_auc=robust_auc(eps_list, balanced_acc, [robust_bal[e] for e in eps_list]),
        attack=f"multi-label PGD-{config.steps} on the BCE loss, random start "
        f"({config.norm}, the label set must stay the same; respect_padding=True)",
        seconds=time.perf_counter() - started,
        robust_acc_by_class={
            c: {e: float(survivors[e][truth[:, i]].mean()) for e in eps_list}
            for i, c in enumerate(classes)
            if truth[:, i].any()
        },
        skipped={"median_adv_eps": "bisection is defined for one label per sample"}
        if config.bisect_steps
        else {},
        macro_f1=f1,
        robust_macro_f1=robust_f1,
        uv_per_unit=uv_per_unit(sub.amp_mv),
        beats=BeatOutcomes(
            record=sub.record.copy(),
            y=sub.y.copy(),
            clean_correct=correct,
            survived=np.stack([survivors[e] for e in eps_list]),
            classes=tuple(classes),
        )
        if keep_beats
        else None,
    )
