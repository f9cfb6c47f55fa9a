"""The Square attack (Andriushchenko et al., ECCV 2020) under L-inf, adapted to 1-D signals.

A score-based black box: random search on the model's logits alone, never a gradient, so it still
finds the weak spots of a model whose gradients are masked (quantised inputs, non-differentiable
pre-processing) where PGD sees a zero gradient and stalls. An image's squares become windows of a
beat, at the same position in every lead, within the beat's real samples.
"""

from __future__ import annotations

import torch
from torch import nn

from nsr_tune._checks import positive_int
from nsr_tune.attacks._base import Attack, AttackResult
from nsr_tune.attacks._losses import margin_loss
from nsr_tune.attacks._projections import _draw
from nsr_tune.errors import ConfigError

# The iterations, of the paper's 10,000, after which p halves (its schedule, tuned on images).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
# Sign draws per proposal. A window whose new values equal its old ones would waste a query; the
# paper redraws until they differ, here the first of a few draws that does is taken.
_TRIES = 8


def p_schedule(p_init: float, i: int, n_queries: int) -> float:
    """The fraction of a beat that proposal i changes, rescaled to n_queries as in the paper's code."""
    it = int(i / n_queries * 10000)
    return p_init / 2 ** sum(it > h for h in _HALVINGS)


class Square(Attack):
    """Square attack: each proposal sets one window of a beat to +-eps per lead, kept if it raises
    the margin loss; windows shrink with the paper's schedule for p, w = max(1, round(p * length)).

    Queries: every forward of an unbroken beat is one, the clean one included, so a beat uses at
    most `restarts * n_queries`; `last_queries` (B,) holds them after a call. A beat counts as
    broken once any queried point misclassifies it, and that point is its x_adv; an unbroken beat
    gets the point of highest margin it reached. Random numbers are drawn for every beat on every
    proposal, used or not, so a beat's search does not depend on the others: `early_exit` (broken
    beats leave the batch) changes the speed only, not the result.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "linf",
        n_queries: int = 1000,
        p_init: float = 0.8,
        restarts: int = 1,
        early_exit: bool = True,
        clamp: bool = False,
        respect_padding: bool = True,
    ) -> None:
        if norm == "l2":
            raise ConfigError("norm: Square implements only 'linf' (the paper's L2 attack is not ported)")
        super().__init__(model, eps=eps, norm=norm, clamp=clamp, respect_padding=respect_padding)
        positive_int(n_queries, "n_queries")
        if not (isinstance(p_init, (int, float)) and 0 < p_init <= 1):
            raise ConfigError(f"p_init: must be a fraction in (0, 1], got {p_init!r}")
        positive_int(restarts, "restarts")
        self.n_queries, self.p_init, self.restarts = n_queries, float(p_init), restarts
        self.early_exit = early_exit
        self.last_queries: torch.Tensor | None = None

    @torch.no_grad()  # a black box: the logits are all it reads
    def forward(
        self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
    ) -> AttackResult:
        (b, c, _), eps = x.shape, self.eps
        z = self.model(x)
        broken = z.argmax(dim=1) != y  # already wrong on the clean beat: broken unattacked
        best = margin_loss(z, y)  # (B,) the highest margin reached, for an unbroken beat's x_adv
        x_adv = x.clone()
        queries = torch.ones(b, dtype=torch.long, device=x.device)  # the clean forward
        n_real = mask.sum(dim=(1, 2))  # (B,) the samples a window may cover
        rank = mask.cumsum(dim=-1) - 1  # (B, 1, L): each real sample's place among its beat's
        # Dropping broken beats takes a boolean index, a wait for the device: on a GPU, only now and then.
        compact_every = self._compact_every(x)

        def query(active: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
            """One forward of the beats `active` at x + delta; records who it breaks; their margins."""
            xa = self._point(x[active], delta, mask[active])
            z = self.model(xa)
            queries[active] += (~broken[active]).long()
            hit = (z.argmax(dim=1) != y[active]) & ~broken[active]  # only a first fooling point is kept
            x_adv[active] = torch.where(hit[:, None, None], xa, x_adv[active])
            broken[active] = broken[active] | hit
            return margin_loss(z, y[active])

        for restart in range(self.restarts):
            steps = self.n_queries - 1 - (restart == 0)  # proposals after the start point's query
            active = torch.nonzero(~broken).squeeze(1)
            if steps < 0 or active.numel() == 0:
                break
            # The paper starts from vertical stripes; their 1-D analogue is +-eps per sample and lead.
            delta = self._signs((b, c, x.shape[2]), x, generator) * mask
            margin = torch.full_like(best, float("-inf"))
            margin[active] = query(active, delta[active])
            for i in range(steps):
                if self.early_exit and i % compact_every == 0:
                    active = active[~broken[active]]
                    if active.numel() == 0:
                        break
                u = _draw(torch.rand, (b,), x, generator)[active]
                signs = self._signs((_TRIES, b, c, 1), x, generator)[:, active]  # (T, A, C, 1)
                n = n_real[active]
                w = (self.p_schedule(i) * n).round().clamp_min(1)  # (A,), <= n since p <= 1
                start = torch.minimum((u * (n - w + 1)).floor(), n - w)[:, None, None]
                rk, m, d = rank[active], mask[active], delta[active]
                window = (rk >= start) & (rk < start + w[:, None, None]) & (m > 0)  # (A, 1, L)
                # Which of -eps, +eps would change lead l of the window (after clamping, if asked);
                # the first draw that changes some lead is the proposal.
                old = self._point(x[active], d, m)
                moves = [
                    ((self._point(x[active], torch.full_like(d, s), m) != old) & window).any(dim=-1)
                    for s in (-eps, eps)
                ]  # each (A, C)
                moved = torch.where(signs[..., 0] > 0, moves[1], moves[0]).any(dim=-1)  # (T, A)
                pick = moved.float().argmax(dim=0)  # the first such draw; draw 0 if none moves
                v = signs[pick, torch.arange(len(active), device=x.device)]  # (A, C, 1)
                proposal = torch.where(window, v, d)
                new = query(active, proposal)
                better = new > margin[active]
                delta[active] = torch.where(better[:, None, None], proposal, d)
                margin[active] = torch.where(better, new, margin[active])
            improved = (margin > best) & ~broken
            x_adv.copy_(torch.where(improved[:, None, None], self._point(x, delta, mask), x_adv))
            best = torch.maximum(best, margin)
        self.last_queries = queries
        return AttackResult(x_adv, broken)

    def p_schedule(self, i: int) -> float:
        return p_schedule(self.p_init, i, self.n_queries)

    def _signs(self, shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        return (1 - 2 * (_draw(torch.rand, shape, like, gen) < 0.5).to(like.dtype)) * self.eps

    def _point(self, x: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Clamping only pulls entries toward [0, 1], which keeps delta in the ball; the mask keeps
        # the padding as it was.
        return x + ((x + delta).clamp(0.0, 1.0) - x) * mask if self.clamp else x + delta * mask
