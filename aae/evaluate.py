"""How good is a trained AAE: classification error, reconstruction error, Parzen-window log-likelihood.

Everything runs in batches under `torch.no_grad()` on tensors; sample counts are parameters so
tests can use tiny ones and benchmarks the paper's (10K samples).

The Parzen estimate follows the paper (and Goodfellow et al.'s GAN protocol it copies): draw
`n_samples` images from the model's prior through the decoder, fit an isotropic Gaussian kernel
density to them in [0, 1] pixel space, choose the kernel width sigma on a validation split, and
report the mean log-likelihood of the test set (MNIST paper figure: 340 +- 2 nats).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from aae.model import AAE, reconstruction_loss

DEFAULT_SIGMAS = tuple(float(s) for s in np.logspace(-1.0, 0.0, 10))  # the GAN paper's MNIST grid


@torch.no_grad()
def encode_all(model: AAE, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Deterministic (y, z) for every row, in eval mode, batched to bound memory."""
    model.eval()
    device = next(model.parameters()).device
    ys, zs = [], []
    for chunk in x.split(batch_size):
        y, z = model.encode(chunk.to(device))
        ys.append(y)
        zs.append(z)
    return (torch.cat(ys) if ys[0] is not None else None), torch.cat(zs)


@torch.no_grad()
def classification_error(model: AAE, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of rows whose most probable class is wrong (the paper's semi-supervised test error)."""
    y, _ = encode_all(model, x, batch_size)
    if y is None:
        raise ValueError(f"a {model.cfg.variant} AAE has no classifier head")
    return float((y.argmax(dim=-1).cpu() != labels.cpu()).float().mean())


@torch.no_grad()
def reconstruction_error(
    model: AAE, x: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> float:
    """Mean 0.5 * ||x - decode(encode(x))||^2 per row (the training loss, on held-out data).

    The supervised variant decodes with the true one-hot label, so it needs `labels`.
    """
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for i, chunk in enumerate(x.split(batch_size)):
        chunk = chunk.to(device)
        y, z = model.encode(chunk)
        if model.cfg.variant == "supervised":
            if labels is None:
                raise ValueError("the supervised AAE decodes with the true label: pass labels")
            part = labels[i * batch_size : i * batch_size + chunk.shape[0]].to(device)
            y = torch.nn.functional.one_hot(part, model.cfg.n_classes).float()
        total += float(reconstruction_loss(chunk, model.decode(y, z))) * chunk.shape[0]
    return total / x.shape[0]


@torch.no_grad()
def parzen_log_likelihoods(
    samples: torch.Tensor, x: torch.Tensor, sigmas: tuple[float, ...], batch_size: int = 500
) -> torch.Tensor:
    """Mean log p(x) under a Gaussian Parzen window on `samples`, one value per sigma ([len(sigmas)]).

    log p(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log S - D/2 log(2 pi sigma^2).
    The squared distances are computed once per batch and reused for every sigma.
    """
    s, d = samples.shape
    sig = torch.tensor(sigmas, dtype=torch.float64)
    s_sq = samples.pow(2).sum(dim=1)
    total = torch.zeros(len(sigmas), dtype=torch.float64)
    for chunk in x.split(batch_size):
        dist = (chunk.pow(2).sum(dim=1, keepdim=True) + s_sq[None, :] - 2.0 * chunk @ samples.T).clamp_min(0)
        dist = dist.double()
        for j, sigma in enumerate(sigmas):
            log_k = torch.logsumexp(-dist / (2.0 * sigma * sigma), dim=1)
            total[j] += log_k.sum()
    norm = math.log(s) + 0.5 * d * torch.log(2.0 * math.pi * sig**2)
    return total / x.shape[0] - norm


@torch.no_grad()
def parzen_evaluate(
    model: AAE,
    x_valid: torch.Tensor,
    x_test: torch.Tensor,
    n_samples: int = 10000,
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS,
    seed: int = 0,
) -> dict[str, float | list[float]]:
    """Parzen-window log-likelihood of `x_test` (data in [-1, 1], scored in [0, 1] pixel space).

    Sigma is the grid value with the best validation log-likelihood; returns it, the test figure
    (nats, higher is better) and the validation curve.
    """
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    samples = torch.cat(
        [model.generate(len(part), generator=generator) for part in torch.arange(n_samples).split(1000)]
    )
    samples = ((samples + 1.0) / 2.0).float().cpu()
    valid = (x_valid.float().cpu() + 1.0) / 2.0
    test = (x_test.float().cpu() + 1.0) / 2.0
    curve = parzen_log_likelihoods(samples, valid, sigmas)
    best = int(curve.argmax())
    test_ll = parzen_log_likelihoods(samples, test, (sigmas[best],))[0]
    return {
        "parzen_sigma": float(sigmas[best]),
        "parzen_log_likelihood": float(test_ll),
        "parzen_valid_curve": [float(v) for v in curve],
        "parzen_sigmas": [float(s) for s in sigmas],
        "parzen_samples": n_samples,
        "parzen_n_test": int(x_test.shape[0]),
    }
