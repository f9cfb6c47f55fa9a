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

import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nsr_tune.attacks import MultiLabelPGD, label_sets, padding_mask
from nsr_tune.config import EvalConfig, check_multilabel_eval
from nsr_tune.data import RecordSet
from nsr_tune.evaluation.batching import batches, predict_logits
from nsr_tune.evaluation.result import EvalResult, Outcomes, assemble
from nsr_tune.evaluation.scores import LabelSets, stratified_cap

__all__ = ["evaluate_multilabel"]


class _SetCascade:
    """PGD over the eps grid on the records still right, and uniform noise of the same size."""

    def __init__(self, model: nn.Module, records: RecordSet, clean: np.ndarray, truth: np.ndarray) -> None:
        self.model = model
        self.records = records
        self.truth = truth  # (N, K)
        self.adv_sets = clean.copy()  # each record's set under attack so far: clean until broken
        self.alive = (clean == truth).all(axis=1)
        self.survivors: dict[float, np.ndarray] = {}
        self.robust_pred: dict[float, np.ndarray] = {}
        self.noise: dict[float, float] = {}

    def run(self, eps: float, config: EvalConfig, device: torch.device, generator: torch.Generator) -> None:
        attack = MultiLabelPGD(
            self.model, eps=eps, steps=config.steps, step_size=config.step_size, norm=config.norm
        )
        noisy_ok = np.zeros(len(self.records), dtype=bool)
        for part in batches(np.arange(len(self.records)), config.batch_size, self.records.length):
            x_np, lengths = self.records.inputs(part)
            x = torch.from_numpy(x_np).to(device)
            t = torch.from_numpy(self.records.targets[part]).to(device)
            lens = torch.from_numpy(lengths).to(device)
            self._attack(attack, part, x, t, lens, generator)
            noisy_ok[part] = self._noise_keeps(attack, x, t, lens, generator)
        self.survivors[eps] = self.alive.copy()
        self.robust_pred[eps] = np.where(self.alive[:, None], self.truth, self.adv_sets)
        self.noise[eps] = float(noisy_ok.mean())

    def _attack(
        self,
        attack: MultiLabelPGD,
        part: np.ndarray,
        x: torch.Tensor,  # (B, leads, L)
        t: torch.Tensor,  # (B, K)
        lens: torch.Tensor,  # (B,)
        generator: torch.Generator,
    ) -> None:
        """Attack the records of `part` still right; keep the set each broken one was pushed into."""
        todo = self.alive[part]
        if not todo.any():
            return
        keep = torch.from_numpy(todo).to(x.device)
        res = attack(x[keep], t[keep], lengths=lens[keep], generator=generator)
        hit = res.broken.cpu().numpy()
        if hit.any():
            with torch.no_grad():
                sets = label_sets(self.model(res.x_adv[res.broken])).cpu().numpy()
            broken_idx = part[todo][hit]
            self.adv_sets[broken_idx] = sets
            self.alive[broken_idx] = False

    def _noise_keeps(
        self,
        attack: MultiLabelPGD,
        x: torch.Tensor,
        t: torch.Tensor,
        lens: torch.Tensor,
        generator: torch.Generator,
    ) -> np.ndarray:
        """Which records keep their set under uniform noise of the attack's size: the floor any
        attack must beat."""
        proj, eps = attack.projection, attack.eps
        mask = padding_mask(x, lens)  # (B, 1, L)
        with torch.no_grad():
            z = self.model(x + proj.project(proj.random(x, eps, generator) * mask, eps))
        return (label_sets(z) == t.bool()).all(dim=1).cpu().numpy()


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
    sub = records.subset(stratified_cap(records.y, cap=config.per_class_cap, seed=config.seed))
    device = torch.device(device)
    model = model.to(device).eval()
    truth = sub.targets.astype(bool)  # (N, K)
    clean = predict_logits(model, sub, device=device, batch_size=config.batch_size) > 0  # (N, K)
    scorer = LabelSets(
        truth, sub.y, tuple(records.classes), config.balanced_classes or tuple(records.classes)
    )
    run = _SetCascade(model, sub, clean, truth)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    bar = tqdm(config.eps, desc=f"multi-label PGD {config.norm}", disable=not progress, leave=False)
    for eps in bar:
        run.run(eps, config, device, generator)
        bar.set_postfix(eps=eps, robust=f"{run.alive.mean():.3f}")
    bar.close()
    return assemble(
        Outcomes(pred=clean, survivors=run.survivors, robust_pred=run.robust_pred, noise_acc=run.noise),
        scorer=scorer,
        eps=config.eps,
        norm=config.norm,
        record=sub.record,
        amp_mv=sub.amp_mv,
        attack=f"multi-label PGD-{config.steps} on the BCE loss, random start "
        f"({config.norm}, the label set must stay the same; respect_padding=True)",
        seconds=time.perf_counter() - started,
        keep_beats=keep_beats,
        skipped={"median_adv_eps": "bisection is defined for one label per sample"}
        if config.bisect_steps
        else {},
    )
