"""The distributions an AAE's discriminators hold codes to (Makhzani et al. 2015, section 2).

All samplers are vectorised (no per-sample Python) and take an optional `torch.Generator`, so a
training run is reproducible for a seed. Priors return float32 tensors on `device`.
"""

from __future__ import annotations

import math

import torch

PRIORS = ("gaussian", "gmm")

# The paper's / reference's 2-D mixture: components on a circle, elongated along the radius.
GMM_RADIUS = 1.4
GMM_STD_RADIAL = 0.5
GMM_STD_TANGENT = 0.1


def sample_gaussian(
    n: int, dim: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """N(0, I) samples, [n, dim]."""
    return torch.randn(n, dim, generator=generator, device=device)


def sample_gmm(
    n: int,
    dim: int,
    n_components: int = 10,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Samples of the mixture of `n_components` 2-D Gaussians on a circle, [n, dim] (dim even).

    Component k sits at angle 2*pi*k/K, radius 1.4, std 0.5 along the radius and 0.1 across it.
    With `labels` ([n] ints, -1 = unlabelled) a labelled sample draws every 2-D pair from its own
    class's component; otherwise (and for label -1) each 2-D pair picks a component at random,
    independently, as the reference does for codes wider than 2.
    """
    if dim % 2:
        raise ValueError(f"the GMM prior needs an even code size, got {dim}")
    pairs = dim // 2
    component = torch.randint(0, n_components, (n, pairs), generator=generator, device=device)
    if labels is not None:
        labels = labels.to(device)
        known = labels >= 0
        component = torch.where(known[:, None], labels[:, None].clamp(min=0).expand(n, pairs), component)
    radial = torch.randn(n, pairs, generator=generator, device=device) * GMM_STD_RADIAL + GMM_RADIUS
    tangent = torch.randn(n, pairs, generator=generator, device=device) * GMM_STD_TANGENT
    angle = component.float() * (2.0 * math.pi / n_components)
    return gmm_points(radial, tangent, angle).reshape(n, dim)


def gmm_points(radial: torch.Tensor, tangent: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """2-D points [..., 2] at distance `radial` along, and `tangent` across, the direction `angle`."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack((radial * cos - tangent * sin, radial * sin + tangent * cos), dim=-1)


def gmm_component_means(n_components: int = 10) -> torch.Tensor:
    """Centres of the mixture's components, [K, 2] (for plots and manifold grids)."""
    angle = torch.arange(n_components, dtype=torch.float32) * (2.0 * math.pi / n_components)
    return torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1) * GMM_RADIUS


def sample_categorical(
    n: int, n_classes: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Uniform one-hot samples, [n, n_classes] (the semi-supervised AAE's prior on y)."""
    index = torch.randint(0, n_classes, (n,), generator=generator, device=device)
    return torch.nn.functional.one_hot(index, n_classes).float()


def sample_prior(
    kind: str,
    n: int,
    dim: int,
    n_components: int = 10,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Dispatch by prior name ("gaussian" or "gmm"); `labels` only steer the GMM."""
    if kind == "gaussian":
        return sample_gaussian(n, dim, generator, device)
    if kind == "gmm":
        return sample_gmm(n, dim, n_components, labels, generator, device)
    raise ValueError(f"unknown prior {kind!r}: use one of {', '.join(PRIORS)}")
