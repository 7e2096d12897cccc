"""Plain training loops for every AAE variant, over tensors already in memory.

A training step runs the paper's phases in order, each with its own Adam (beta1 = 0.5) as the
reference does:

1. reconstruction: encoder + decoder minimise `encw` * 0.5 * ||x - x_hat||^2 (dropout active here only);
2. z discriminator (`disw`): prior samples are real, encoder codes fake;
3. z generator (`genw`): the encoder tries to pass its codes off as prior samples;
4. semi-supervised only: y discriminator (`ydisw`) and y generator (`ygenw`) on the softmax y
   against one-hot categorical samples, then, every `cls_every` steps, a supervised
   cross-entropy step (`clsw`) on a batch of labelled rows, plus, when `vatw` > 0, a virtual
   adversarial term on the unlabelled batch (`aae.vat`, an extension beyond the paper).

Data stay in tensors (on the GPU when the model is there); batches are index slices of a shuffled
permutation, so no Python runs per sample. Shuffling and prior draws use one seeded generator and
the global torch RNG is seeded too: a run is repeatable for a seed on CPU, and `state_dict()`
holds everything (optimisers, RNGs, labelled-batch position) to resume it bit for bit.

    trainer = Trainer(model, TrainConfig(epochs=5))
    for epoch in range(5):
        losses = trainer.train_epoch(x, labels)   # labels: -1 = unlabelled
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aae.model import AAE, discriminator_loss, generator_loss, reconstruction_loss
from aae.priors import sample_categorical
from aae.vat import vat_loss


@dataclass
class TrainConfig:
    """Schedule and loss weights; defaults are the reference's (`experiment/aae_mnist.py`)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 2e-4
    encw: float = 1.0  # reconstruction
    genw: float = 6.0  # z generator
    disw: float = 6.0  # z discriminator
    clsw: float = 1.0  # semi-supervised classification
    ygenw: float = 6.0  # y generator
    ydisw: float = 6.0  # y discriminator
    cls_every: int = 1  # semi-supervised: classification step every N steps (paper: every batch; reference: 10)
    lr_milestones: tuple[int, ...] = ()  # epochs (1-based) at which lr is divided by 10
    vatw: float = 0.0  # weight of the VAT term on the unlabelled batch in the classification phase (0: off)
    vat_eps: float = 4.0  # L2 norm of the VAT perturbation, in input units ([-1, 1] pixels)
    vat_xi: float = 1e-6  # finite-difference step of VAT's power iteration
    seed: int = 0
    progress: bool = True  # tqdm bar with the current losses
    log_every: int = 50  # steps between `on_log` callbacks (TensorBoard) and bar updates


def _params(*modules: nn.Module | None) -> list[nn.Parameter]:
    return [p for m in modules if m is not None for p in m.parameters()]


class Trainer:
    """Owns the optimisers, RNG and counters of one training run of one model."""

    def __init__(self, model: AAE, cfg: TrainConfig | None = None):
        self.model = model
        self.cfg = cfg = cfg or TrainConfig()
        self.device = next(model.parameters()).device
        torch.manual_seed(cfg.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        enc = model.encoder

        def adam(params: list[nn.Parameter]) -> torch.optim.Adam:
            return torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))

        self.optimizers: dict[str, torch.optim.Adam] = {
            "ae": adam(_params(model.encoder, model.decoder)),
            "z_dis": adam(_params(model.z_discriminator)),
            "z_gen": adam(_params(enc.trunk, enc.z_mean, enc.z_std)),
        }
        if model.cfg.has_classifier:
            self.optimizers["y_dis"] = adam(_params(model.y_discriminator))
            self.optimizers["y_gen"] = adam(_params(enc.trunk, enc.y_logits))
            self.optimizers["cls"] = adam(_params(enc.trunk, enc.y_logits))
        self._dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self._labelled_order: torch.Tensor | None = None
        self._labelled_pos = 0

    # --- one step --------------------------------------------------------------------------------
    def _dropout(self, active: bool) -> None:
        for module in self._dropouts:
            module.train(active)

    def _update(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        labelled_x: torch.Tensor | None = None,
        labelled_y: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """All phases on one batch; returns the (weighted) loss of each phase as detached tensors.

        `labels` [B] go with `x` (-1 = unlabelled; the supervised variant needs them all);
        `labelled_x/labelled_y` are the batch for the semi-supervised classification phase.
        """
        model, cfg, mcfg = self.model, self.cfg, self.model.cfg
        model.train()
        n = x.shape[0]
        out: dict[str, torch.Tensor] = {}

        # 1. reconstruction (the only phase with dropout, as in the reference)
        self._dropout(True)
        logits, z = model.sample_z(x)
        if mcfg.variant == "semisupervised":
            y = torch.softmax(logits, dim=-1)
        elif mcfg.variant == "supervised":
            y = F.one_hot(labels, mcfg.n_classes).float()
        else:
            y = None
        out["recon"] = self._update("ae", cfg.encw * reconstruction_loss(x, model.decode(y, z)))
        self._dropout(False)

        # 2. z discriminator: prior (real) vs encoder codes (fake); codes come without gradient
        prior_labels = labels if mcfg.variant == "label" else None
        z_real = model.sample_z_prior(n, prior_labels, self.generator)
        with torch.no_grad():
            logits, z_fake = model.sample_z(x)
            y_fake = torch.softmax(logits, dim=-1) if logits is not None else None
        tag = model.label_code(labels) if mcfg.variant == "label" else None

        def z_disc(code: torch.Tensor) -> torch.Tensor:
            return model.z_discriminator(code if tag is None else torch.cat((code, tag), dim=-1))

        out["z_dis"] = self._update("z_dis", cfg.disw * discriminator_loss(z_disc(z_real), z_disc(z_fake)))

        # 3. z generator: the encoder learns to fool the z discriminator
        _, z_fake = model.sample_z(x)
        out["z_gen"] = self._update("z_gen", cfg.genw * generator_loss(z_disc(z_fake)))

        if mcfg.variant == "semisupervised":
            # 4. y discriminator and generator: categorical prior on the softmax output
            y_real = sample_categorical(n, mcfg.n_classes, self.generator, self.device)
            d_loss = discriminator_loss(model.y_discriminator(y_real), model.y_discriminator(y_fake))
            out["y_dis"] = self._update("y_dis", cfg.ydisw * d_loss)
            logits, _ = model.sample_z(x)
            y_fake = torch.softmax(logits, dim=-1)
            out["y_gen"] = self._update("y_gen", cfg.ygenw * generator_loss(model.y_discriminator(y_fake)))
            # 5. supervised classification on labelled rows, every cls_every steps
            if labelled_x is not None and self.global_step % cfg.cls_every == 0:
                logits, _, _ = model.encoder_outputs(labelled_x)
                loss = cfg.clsw * F.cross_entropy(logits, labelled_y)
                if cfg.vatw > 0:
                    vat = vat_loss(self._logits, x, cfg.vat_eps, cfg.vat_xi, generator=self.generator)
                    out["vat"] = cfg.vatw * vat.detach()
                    loss = loss + cfg.vatw * vat
                out["cls"] = self._update("cls", loss)
        self.global_step += 1
        return out

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encoder_outputs(x)[0]

    # --- one epoch -------------------------------------------------------------------------------
    def _labelled_batch(self, x_lab: torch.Tensor, y_lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next batch of the labelled rows, cycling through reshuffled passes (they are few)."""
        n, size = x_lab.shape[0], min(self.cfg.batch_size, x_lab.shape[0])
        if self._labelled_order is None or self._labelled_pos + size > n:
            self._labelled_order = torch.randperm(n, generator=self.generator, device=self.device)
            self._labelled_pos = 0
        index = self._labelled_order[self._labelled_pos : self._labelled_pos + size]
        self._labelled_pos += size
        return x_lab[index], y_lab[index]

    def _set_lr(self) -> float:
        decays = sum(1 for m in self.cfg.lr_milestones if self.epoch + 1 >= m)
        lr = self.cfg.lr / (10**decays)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def train_epoch(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ) -> dict[str, float]:
        """One pass over `x` [N, D] (labels [N], -1 = unlabelled); returns the mean loss of each phase."""
        from latentcast.progress import progress

        x, labels = x.to(self.device), labels.to(self.device, torch.int64)
        if self.model.cfg.variant == "supervised" and bool((labels < 0).any()):
            raise ValueError("the supervised AAE needs a label for every row (got -1s)")
        known = labels >= 0
        x_lab, y_lab = (x[known], labels[known]) if self.model.cfg.has_classifier and known.any() else (None, None)
        lr = self._set_lr()
        order = torch.randperm(x.shape[0], generator=self.generator, device=self.device)
        # Drop the last partial batch (as the reference's dataflow does): batch statistics stay comparable.
        n_batches = max(1, x.shape[0] // self.cfg.batch_size)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        bar = progress(range(n_batches), desc=f"epoch {self.epoch}", disable=not self.cfg.progress, leave=False)
        for i in bar:
            index = order[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size]
            lab = self._labelled_batch(x_lab, y_lab) if x_lab is not None else (None, None)
            losses = self.step(x[index], labels[index], *lab)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            if (i + 1) % self.cfg.log_every == 0 or i + 1 == n_batches:
                current = {k: float(v) / counts[k] for k, v in sums.items()}
                bar.set_postfix({k: f"{v:.3g}" for k, v in current.items()})
                if on_log is not None:
                    on_log(self.global_step, current)
        self.epoch += 1
        means = {k: float(v) / counts[k] for k, v in sums.items()}
        means["lr"] = lr
        return means

    # --- resuming --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimiser states, counters, the labelled-batch position and every RNG state (torch CPU and
        CUDA, this run's generator, numpy, python): all a resumed run needs to repeat bit for bit.

        Plain data only (tensors, numbers, lists), so `torch.load(weights_only=True)` reads it.
        """
        np_state = np.random.get_state()
        py_state = random.getstate()
        state: dict[str, Any] = {
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "epoch": self.epoch,
            "global_step": self.global_step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": [str(np_state[0]), torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
            "labelled_order": None if self._labelled_order is None else self._labelled_order.cpu(),
            "labelled_pos": self._labelled_pos,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if "numpy_rng" in state:
            name, key, pos, has_gauss, cached = state["numpy_rng"]
            np.random.set_state((name, key.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
        if "python_rng" in state:
            version, internal, gauss = state["python_rng"]
            random.setstate((version, tuple(internal), gauss))
        order = state.get("labelled_order")
        self._labelled_order = None if order is None else order.to(self.device)
        self._labelled_pos = int(state.get("labelled_pos", 0))


def train(
    model: AAE,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    epochs: int | None = None,
    cfg: TrainConfig | None = None,
    on_epoch: Callable[[Trainer, dict[str, float]], None] | None = None,
    **overrides: Any,
) -> list[dict[str, float]]:
    """Train any variant for `epochs`; returns the per-epoch mean losses. `overrides` set TrainConfig fields."""
    cfg = cfg or TrainConfig()
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise TypeError(f"unknown training option {key!r}")
        setattr(cfg, key, value)
    if epochs is not None:
        cfg.epochs = epochs
    if labels is None:
        labels = torch.full((x.shape[0],), -1, dtype=torch.int64)
    trainer = Trainer(model, cfg)
    history = []
    for _ in range(cfg.epochs):
        losses = trainer.train_epoch(x, labels)
        history.append(losses)
        if on_epoch is not None:
            on_epoch(trainer, losses)
    model.eval()
    return history


def train_semisupervised(
    model: AAE, x: torch.Tensor, labels: torch.Tensor, epochs: int, **overrides: Any
) -> list[dict[str, float]]:
    """The semi-supervised case (labels -1 = unlabelled), e.g. `epochs=40, batch_size=128, seed=0`."""
    if not model.cfg.has_classifier:
        raise ValueError(f"train_semisupervised needs a semisupervised model, got variant {model.cfg.variant!r}")
    return train(model, x, labels, epochs, **overrides)
