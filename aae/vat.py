"""Virtual adversarial training (Miyato et al., arXiv 1507.00677 / 1704.03976) for the classifier head.

An extension beyond the AAE paper (used only by the `strong` MNIST recipe): on unlabelled rows,
find the small input perturbation r (||r||_2 = eps per row) that changes the class distribution
most, by one power iteration from a random direction, and penalise KL(p(y|x) || p(y|x + r)).
It needs no labels, so it uses the whole unlabelled batch.

    loss = vat_loss(lambda v: model.encoder_outputs(v)[0], x, eps=4.0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def l2_normalize(d: torch.Tensor) -> torch.Tensor:
    """Each row scaled to unit L2 norm (over all non-batch dimensions)."""
    norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
    return d / norm.view(-1, *([1] * (d.dim() - 1)))


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per batch (mean over rows), from logits; p is treated as fixed."""
    p = F.softmax(p_logits, dim=-1)
    return (p * (F.log_softmax(p_logits, dim=-1) - F.log_softmax(q_logits, dim=-1))).sum(dim=-1).mean()


def adversarial_perturbation(
    logits_fn: LogitsFn,
    x: torch.Tensor,
    eps: float,
    xi: float = 1e-6,
    power_iterations: int = 1,
    generator: torch.Generator | None = None,
    clean_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """r_adv [N, D]: each row has L2 norm `eps`, pointing where the prediction changes fastest.

    `xi` is the finite-difference step of the power iteration (the VAT papers' 1e-6). No
    parameter gradients are accumulated: only the direction is computed here.
    """
    if clean_logits is None:
        with torch.no_grad():
            clean_logits = logits_fn(x)
    clean_logits = clean_logits.detach()
    d = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    for _ in range(power_iterations):
        d = (xi * l2_normalize(d)).requires_grad_(True)
        distance = _kl(clean_logits, logits_fn(x + d))
        (grad,) = torch.autograd.grad(distance, d)
        d = grad.detach()
    return eps * l2_normalize(d)


def vat_loss(
    logits_fn: LogitsFn,
    x: torch.Tensor,
    eps: float,
    xi: float = 1e-6,
    power_iterations: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """KL(p(y|x) || p(y|x + r_adv)) averaged over the rows of `x`; p(y|x) is a constant target."""
    with torch.no_grad():
        clean = logits_fn(x)
    r_adv = adversarial_perturbation(logits_fn, x, eps, xi, power_iterations, generator, clean)
    return _kl(clean, logits_fn(x + r_adv))
