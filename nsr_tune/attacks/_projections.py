"""Where a norm enters an attack: random starts, ascent directions, projection onto the eps-ball."""

from __future__ import annotations

import torch


def _draw(
    fn, shape: tuple[int, ...] | torch.Size, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Random numbers from `generator` on its own device, moved to `like`'s device and dtype.

    A trial keeps one CPU generator for all its draws (its state goes into the checkpoint),
    while its tensors may live on a GPU.
    """
    device = generator.device if generator is not None else like.device
    return fn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


class Projection:
    name: str

    def random(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def ascent(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        raise NotImplementedError


class LinfBall(Projection):
    name = "linf"

    def random(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        u = _draw(torch.rand, like.shape, like, generator)
        return (2 * u - 1) * eps  # uniform in the cube

    def ascent(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        return delta.clamp(-eps, eps)


class L2Ball(Projection):
    name = "l2"

    def random(self, like: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        g = _draw(torch.randn, like.shape, like, generator)
        r = _draw(torch.rand, (like.shape[0], 1, 1), like, generator)
        return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1) * r * eps

    def ascent(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)

    def project(self, delta: torch.Tensor, eps: float) -> torch.Tensor:
        norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1)  # (B, 1, 1)
        return delta * (eps / norms.clamp_min(eps))  # shrink only what lies outside the ball


PROJECTIONS: dict[str, Projection] = {"linf": LinfBall(), "l2": L2Ball()}
