"""Figures people look at: sample grids, the 2-D latent space, manifolds, loss curves.

Images are flat rows in [-1, 1] (e.g. 784 = 28 x 28 for MNIST); `image_shape` says how to fold
them. Matplotlib runs headless (Agg) and is imported lazily so importing `aae` stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from aae import priors
from aae.model import AAE


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tile(images: torch.Tensor | np.ndarray, rows: int, cols: int, image_shape: tuple[int, int]) -> np.ndarray:
    """Fold [rows*cols, H*W] rows in [-1, 1] into one [rows*H, cols*W] array in [0, 1]."""
    h, w = image_shape
    array = np.asarray(images, dtype=np.float32).reshape(rows, cols, h, w)
    return ((array.transpose(0, 2, 1, 3).reshape(rows * h, cols * w) + 1.0) / 2.0).clip(0.0, 1.0)


def save_grid(images: torch.Tensor, rows: int, cols: int, path: str | Path, image_shape: tuple[int, int]) -> Path:
    """A grid of images as one plain grayscale PNG, pixel for pixel (fast: no figure, no axes)."""
    from matplotlib.image import imsave

    imsave(path, tile(images.detach().cpu(), rows, cols, image_shape), cmap="gray", vmin=0.0, vmax=1.0)
    return Path(path)


@torch.no_grad()
def generate_grid(model: AAE, path: str | Path, image_shape: tuple[int, int], size: int = 20, seed: int = 0) -> Path:
    """`generate_im.png`: prior samples through the decoder; one row per class where y is an input."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    if model.cfg.decoder_takes_y:
        k = model.cfg.n_classes
        labels = torch.arange(k, device=device).repeat_interleave(size)
        # the same styles (z) in every row, so each column shows one style across all classes
        z = model.sample_z_prior(size, generator=generator).repeat(k, 1)
        y = torch.nn.functional.one_hot(labels, k).float()
        images, rows = model.decode(y, z), k
    else:
        images = model.generate(size * size, generator=generator)
        rows = size
    return save_grid(images, rows, images.shape[0] // rows, path, image_shape)


def latent_scatter(z: torch.Tensor, labels: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """`latent.png`: codes of held-out data coloured by class (first two dims, or PCA when wider)."""
    plt = _pyplot()
    z = z.detach().cpu().float()
    axis_note = ""
    if z.shape[1] > 2:
        centred = z - z.mean(dim=0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        z, axis_note = centred @ v[:2].T, " (PCA of z)"
    labels = labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="class")
    ax.set_title(title + axis_note, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _gaussian_quantiles(n: int) -> torch.Tensor:
    """n evenly spaced quantiles of N(0, 1), the paper's manifold axis (avoids the infinite tails)."""
    p = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    return math.sqrt(2.0) * torch.erfinv(2 * p - 1)


@torch.no_grad()
def manifold_images(model: AAE, save_dir: str | Path, image_shape: tuple[int, int], size: int = 20) -> list[Path]:
    """Decoded grids over the 2-D code space (code_dim 2 only).

    Gaussian prior: one `manifold.png` over its quantiles. GMM prior: `manifold_<k>.png` per
    component, spanning +-2 std along and across the component. With a class input (supervised,
    semi-supervised) the gaussian grid is drawn once per class as `manifold_<k>.png`.
    """
    if model.cfg.code_dim != 2:
        raise ValueError("manifold images need code_dim == 2")
    model.eval()
    save_dir = Path(save_dir)
    device = next(model.parameters()).device
    k = model.cfg.n_classes
    written = []
    if model.cfg.prior == "gmm":
        u = torch.linspace(-2 * priors.GMM_STD_RADIAL, 2 * priors.GMM_STD_RADIAL, size)
        v = torch.linspace(-2 * priors.GMM_STD_TANGENT, 2 * priors.GMM_STD_TANGENT, size)
        radial, tangent = torch.meshgrid(u, v, indexing="ij")
        for c in range(model.cfg.n_components):
            angle = torch.tensor(2 * math.pi * c / model.cfg.n_components, dtype=torch.float64)
            z = priors.gmm_points(radial + priors.GMM_RADIUS, tangent, angle).reshape(-1, 2).to(device)
            label = torch.full((z.shape[0],), c % k, device=device)
            onehot = torch.nn.functional.one_hot(label, k).float() if model.cfg.decoder_takes_y else None
            path = save_dir / f"manifold_{c}.png"
            written.append(save_grid(model.decode(onehot, z), size, size, path, image_shape))
        return written
    q = _gaussian_quantiles(size)
    z1, z2 = torch.meshgrid(q, q, indexing="ij")
    z = torch.stack((z2, -z1), dim=-1).reshape(-1, 2).to(device)  # image-style layout: z2 grows upward
    if not model.cfg.decoder_takes_y:
        return [save_grid(model.decode(None, z), size, size, save_dir / "manifold.png", image_shape)]
    for c in range(k):
        onehot = torch.nn.functional.one_hot(torch.full((z.shape[0],), c, device=device), k).float()
        path = save_dir / f"manifold_{c}.png"
        written.append(save_grid(model.decode(onehot, z), size, size, path, image_shape))
    return written


def training_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    """`curves.png`: every logged loss / metric per epoch, one panel each."""
    plt = _pyplot()
    keys = [k for k in history[0] if k != "epoch" and all(k in h for h in history)]
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    epochs = [h.get("epoch", i) for i, h in enumerate(history)]
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot(epochs, [h[key] for h in history], marker=".")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
