"""Adversarial autoencoders (Makhzani et al. 2015, arXiv 1511.05644) over flat feature vectors.

One module holds every sub-network and the four variants of the paper. Nothing here knows about
MNIST: the input size D, class count K and code size C are parameters, so the landmark models
(gestures, expressions) reuse this file unchanged.

Variants (`AAEConfig.variant`):

- ``"unsupervised"`` (paper Fig. 1): encoder -> z, decoder(z); a discriminator holds z to the prior
  (``prior="gaussian"`` N(0, I) or ``"gmm"``, the 10-component 2-D mixture of `aae.priors`).
- ``"label"`` (paper Fig. 3, label-regularised): as unsupervised, but the z discriminator also sees
  a one-hot label with one extra "unlabelled" class; a labelled sample's prior draw comes from its
  class's GMM component, so each class occupies its own component.
- ``"supervised"`` (paper Fig. 6): the decoder gets z plus the one-hot label, so z learns style.
- ``"semisupervised"`` (paper Fig. 8): the encoder outputs y (softmax over K) and z; a categorical
  prior on y and a Gaussian (or GMM) prior on z, each with its own discriminator; decoder(y, z).

API (the contract other modules build on)::

    cfg = AAEConfig(input_dim=D, n_classes=K, code_dim=C)          # semisupervised by default
    model = SemiSupervisedAAE(cfg)                                  # or AAE(cfg) for any variant
    model.eval()
    y, z = model.encode(x)          # x [N, D] in [-1, 1] -> y [N, K] class probabilities, z [N, C] (the mean)
    x_hat = model.decode(y, z)      # -> [N, D] in (-1, 1) (tanh)
    y, z = model(x)                 # forward() == encode(), so torch.onnx.export(model, x) gives (y, z)
    save_checkpoint(path, model, card={...}, epoch=3)   # config stored inside, plus any extras
    model = load_checkpoint(path)                       # rebuilt from the stored config, eval mode
    extras = read_checkpoint(path)                      # the whole dict (config, state, extras)

`encode` is deterministic in eval mode (z = mean, no input noise, no dropout). For variants without
a classifier head (unsupervised, label, supervised) `encode` returns y = None, and `decode` takes the
one-hot label as y for "supervised" and ignores y for the other two.
Training (the plain loops over tensors) lives in `aae.train`; the priors in `aae.priors`.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from aae import priors

VARIANTS = ("unsupervised", "label", "supervised", "semisupervised")
CHECKPOINT_FORMAT = 1


@dataclass
class AAEConfig:
    """Sizes and options of one AAE. Defaults are the paper's MNIST networks (1000-unit layers)."""

    input_dim: int
    n_classes: int = 10
    code_dim: int = 2
    variant: str = "semisupervised"
    prior: str = "gaussian"  # prior on z: "gaussian" or "gmm"
    hidden_dim: int = 1000  # encoder and decoder hidden layers
    disc_hidden_dim: int = 1000  # discriminator hidden layers
    dropout_keep: float = 1.0  # keep probability of encoder/decoder hidden units while training (reference --dropout)
    noise: float = 0.0  # std of Gaussian noise added to the encoder input while training (reference --noise: 0.6)
    n_components: int = 0  # GMM components; 0 means one per class (n_classes)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown AAE variant {self.variant!r}: use one of {', '.join(VARIANTS)}")
        if self.prior not in priors.PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}: use one of {', '.join(priors.PRIORS)}")
        if self.prior == "gmm" and self.code_dim % 2:
            raise ValueError(f"the gmm prior needs an even code_dim, got {self.code_dim}")
        if not 0.0 < self.dropout_keep <= 1.0:
            raise ValueError(f"dropout_keep is a keep probability in (0, 1], got {self.dropout_keep}")
        if self.n_components <= 0:
            self.n_components = self.n_classes

    @property
    def has_classifier(self) -> bool:
        return self.variant == "semisupervised"

    @property
    def decoder_takes_y(self) -> bool:
        return self.variant in ("supervised", "semisupervised")


def mlp(sizes: list[int], activation: type[nn.Module], dropout_keep: float = 1.0, **act_kwargs: Any) -> nn.Sequential:
    """Linear + activation (+ dropout) for every hidden layer: `sizes` = [in, hidden..., hidden]."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), activation(**act_kwargs)]
        if dropout_keep < 1.0:
            layers.append(nn.Dropout(1.0 - dropout_keep))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x -> two ReLU layers -> (z mean, softplus z std) and, optionally, class logits."""

    def __init__(self, input_dim: int, hidden_dim: int, code_dim: int, n_classes: int = 0, dropout_keep: float = 1.0):
        super().__init__()
        self.trunk = mlp([input_dim, hidden_dim, hidden_dim], nn.ReLU, dropout_keep)
        self.z_mean = nn.Linear(hidden_dim, code_dim)
        self.z_std = nn.Linear(hidden_dim, code_dim)
        self.y_logits = nn.Linear(hidden_dim, n_classes) if n_classes else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        logits = self.y_logits(h) if self.y_logits is not None else None
        return logits, self.z_mean(h), F.softplus(self.z_std(h))


class Decoder(nn.Module):
    """code -> two ReLU layers -> linear -> tanh, so outputs live in the data's [-1, 1]."""

    def __init__(self, code_in: int, hidden_dim: int, output_dim: int, dropout_keep: float = 1.0):
        super().__init__()
        self.trunk = mlp([code_in, hidden_dim, hidden_dim], nn.ReLU, dropout_keep)
        self.out = nn.Linear(hidden_dim, output_dim)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.trunk(code)))


class Discriminator(nn.Module):
    """code -> two LeakyReLU(0.2) layers -> one logit ("this came from the prior")."""

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.trunk = mlp([input_dim, hidden_dim, hidden_dim], nn.LeakyReLU, negative_slope=0.2)
        self.out = nn.Linear(hidden_dim, 1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(code)).squeeze(-1)


def _init_weights(module: nn.Module) -> None:
    """He-normal weights and zero biases, like the reference's variance-scaling initialiser."""
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)


class AAE(nn.Module):
    """All four variants; which sub-networks exist depends on `cfg.variant` (see module docstring)."""

    def __init__(self, cfg: AAEConfig):
        super().__init__()
        self.cfg = cfg
        k, c = cfg.n_classes, cfg.code_dim
        self.encoder = Encoder(cfg.input_dim, cfg.hidden_dim, c, k if cfg.has_classifier else 0, cfg.dropout_keep)
        self.decoder = Decoder(c + (k if cfg.decoder_takes_y else 0), cfg.hidden_dim, cfg.input_dim, cfg.dropout_keep)
        # The label-regularised z discriminator sees [z, one-hot label with an extra "unlabelled" class].
        z_disc_in = c + (k + 1 if cfg.variant == "label" else 0)
        self.z_discriminator = Discriminator(z_disc_in, cfg.disc_hidden_dim)
        self.y_discriminator = Discriminator(k, cfg.disc_hidden_dim) if cfg.has_classifier else None
        self.apply(_init_weights)
        # The decoder's output layer feeds tanh, not ReLU: Glorot keeps its pre-activations small.
        nn.init.xavier_uniform_(self.decoder.out.weight)

    # --- the codes -------------------------------------------------------------------------------
    def encoder_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(y logits or None, z mean, z std); adds the configured input noise in training mode."""
        if self.training and self.cfg.noise > 0:
            x = x + torch.randn_like(x) * self.cfg.noise
        return self.encoder(x)

    def sample_z(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(y logits or None, z drawn by the reparameterisation trick): the code training uses."""
        logits, mean, std = self.encoder_outputs(x)
        return logits, mean + std * torch.randn_like(std)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(y class probabilities [N, K] or None, z [N, C]); deterministic in eval mode (z = mean)."""
        logits, mean, _ = self.encoder_outputs(x)
        return (torch.softmax(logits, dim=-1) if logits is not None else None), mean

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return self.encode(x)

    def decode(self, y: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """Features [N, D] from (y, z); y is the class code ([N, K]) where the variant uses one."""
        if self.cfg.decoder_takes_y:
            if y is None:
                raise ValueError(f"the {self.cfg.variant} decoder needs y (one-hot or class probabilities)")
            z = torch.cat((y, z), dim=-1)
        return self.decoder(z)

    # --- priors ----------------------------------------------------------------------------------
    def label_code(self, labels: torch.Tensor) -> torch.Tensor:
        """One-hot over K + 1 classes, the last meaning "unlabelled" (label -1): the Fig. 3 input."""
        k = self.cfg.n_classes
        return F.one_hot(torch.where(labels >= 0, labels, torch.full_like(labels, k)), k + 1).float()

    def sample_z_prior(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Prior draws for z, [n, C]; with the GMM a labelled row (label >= 0) uses its class's component."""
        device = next(self.parameters()).device
        return priors.sample_prior(
            self.cfg.prior, n, self.cfg.code_dim, self.cfg.n_components, labels, generator, device
        )

    def sample_prior(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(y, z) drawn from the priors, ready for `decode`: y is one-hot (from `labels` if given)."""
        z = self.sample_z_prior(n, labels, generator)
        if not self.cfg.decoder_takes_y:
            return None, z
        if labels is None:
            y = priors.sample_categorical(n, self.cfg.n_classes, generator, z.device)
        else:
            y = F.one_hot(labels.to(z.device), self.cfg.n_classes).float()
        return y, z

    @torch.no_grad()
    def generate(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decoded prior samples [n, D]: what the model 'imagines'."""
        y, z = self.sample_prior(n, labels, generator)
        return self.decode(y, z)


class SemiSupervisedAAE(AAE):
    """The semi-supervised AAE (paper Fig. 8): the model the landmark encoders use."""

    def __init__(self, cfg: AAEConfig):
        if cfg.variant != "semisupervised":
            raise ValueError(f"SemiSupervisedAAE needs variant='semisupervised', got {cfg.variant!r}")
        super().__init__(cfg)


def build_model(cfg: AAEConfig) -> AAE:
    """The right class for `cfg.variant` (SemiSupervisedAAE for semisupervised, AAE otherwise)."""
    return SemiSupervisedAAE(cfg) if cfg.variant == "semisupervised" else AAE(cfg)


# --- losses (shared by every training phase) ------------------------------------------------------
def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """0.5 * sum of squared errors per sample, averaged over the batch (the paper's / reference's)."""
    return 0.5 * (x - x_hat).pow(2).sum(dim=-1).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy: prior samples are 'real' (1), encoder codes 'fake' (0)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: the encoder wants its codes called 'real'."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# --- checkpoints -----------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: AAE, **extra: Any) -> Path:
    """Write the weights, the config and any extras (epoch, optimiser state, model card...) to `path`.

    Extras must be plain data (numbers, strings, lists, dicts, tensors): checkpoints are read back
    with `torch.load(weights_only=True)`, which refuses arbitrary pickles.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "config": asdict(model.cfg), "state_dict": state, **extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The whole checkpoint dict: "config", "state_dict" and whatever extras were saved."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path} is not an aae checkpoint (no config/state_dict)")
    return payload


def config_from_dict(data: dict[str, Any]) -> AAEConfig:
    """AAEConfig from a stored dict, ignoring keys a newer version might add."""
    known = {f.name for f in fields(AAEConfig)}
    return AAEConfig(**{k: v for k, v in data.items() if k in known})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> AAE:
    """Rebuild the model from its stored config and weights, in eval mode."""
    payload = read_checkpoint(path, map_location)
    model = build_model(config_from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval()
