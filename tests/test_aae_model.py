"""The AAE library: sub-network shapes and ranges, priors, one training step of each variant, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from aae import priors
from aae.model import (
    VARIANTS,
    AAEConfig,
    SemiSupervisedAAE,
    build_model,
    discriminator_loss,
    load_checkpoint,
    read_checkpoint,
    reconstruction_loss,
    save_checkpoint,
)
from aae.train import TrainConfig, Trainer, train_semisupervised

D, K, C = 40, 5, 4  # deliberately not MNIST's sizes: the contract is generic


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(variant: str, prior: str = "gaussian", **kw) -> AAEConfig:
    return AAEConfig(
        input_dim=D, n_classes=K, code_dim=C, variant=variant, prior=prior, hidden_dim=64, disc_hidden_dim=64, **kw
    )


def batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (n,), generator=g)
    # class-dependent structure so there is something to learn, squashed into [-1, 1]
    centres = torch.randn(K, D, generator=g)
    x = torch.tanh(centres[labels] + 0.3 * torch.randn(n, D, generator=g))
    return x, labels


@pytest.mark.parametrize("variant", VARIANTS)
def test_subnetwork_shapes_and_ranges(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(small(variant)).eval()
    x, labels = batch(16)
    y, z = model.encode(x)
    assert z.shape == (16, C)
    if variant == "semisupervised":
        assert isinstance(model, SemiSupervisedAAE)
        assert y.shape == (16, K)
        assert torch.all(y >= 0) and torch.allclose(y.sum(dim=1), torch.ones(16), atol=1e-5)
        assert model.y_discriminator(y).shape == (16,)
    else:
        assert y is None and model.y_discriminator is None
    _, mean, std = model.encoder(x)
    assert torch.all(std > 0), "softplus std head must be positive"
    assert torch.equal(mean, z), "eval-mode encode returns the mean"
    y_dec = torch.nn.functional.one_hot(labels[:16], K).float() if model.cfg.decoder_takes_y else None
    x_hat = model.decode(y_dec, z * 50)  # huge codes still land inside tanh's range
    assert x_hat.shape == (16, D) and torch.all(x_hat.abs() <= 1)
    disc_in = torch.cat((z, model.label_code(labels[:16])), dim=1) if variant == "label" else z
    assert model.z_discriminator(disc_in).shape == (16,)
    assert torch.equal(model(x)[1], z), "forward() is encode(), for ONNX export"


def test_encode_is_deterministic_and_training_mode_is_not() -> None:
    torch.manual_seed(0)
    model = build_model(small("semisupervised", noise=0.6, dropout_keep=0.5))
    x, _ = batch(8)
    model.eval()
    assert torch.equal(model.encode(x)[1], model.encode(x)[1])
    model.train()
    assert not torch.equal(model.sample_z(x)[1], model.sample_z(x)[1])


def test_label_code_has_an_extra_unlabelled_class() -> None:
    model = build_model(small("label"))
    code = model.label_code(torch.tensor([0, 3, -1]))
    assert code.shape == (3, K + 1)
    assert code[2, K] == 1 and code[0, 0] == 1 and code[1, 3] == 1
    assert model.z_discriminator.trunk[0].in_features == C + K + 1


def test_gmm_components_sit_on_the_circle() -> None:
    g = torch.Generator().manual_seed(0)
    n = 20000
    labels = torch.full((n,), 3)
    s = priors.sample_gmm(n, 2, n_components=10, labels=labels, generator=g)
    angle = 2 * math.pi * 3 / 10
    radial_dir = torch.tensor([math.cos(angle), math.sin(angle)])
    tangent_dir = torch.tensor([-math.sin(angle), math.cos(angle)])
    radial, tangent = s @ radial_dir, s @ tangent_dir
    assert abs(radial.mean() - priors.GMM_RADIUS) < 0.02
    assert abs(radial.std() - priors.GMM_STD_RADIAL) < 0.02
    assert abs(tangent.mean()) < 0.01 and abs(tangent.std() - priors.GMM_STD_TANGENT) < 0.01
    means = priors.gmm_component_means(10)
    assert torch.allclose(means[3], radial_dir * priors.GMM_RADIUS, atol=1e-6)


def test_gmm_labelled_rows_use_their_component_and_unlabelled_rows_pick_any() -> None:
    g = torch.Generator().manual_seed(1)
    n = 5000
    labels = torch.cat((torch.full((n,), 7), torch.full((n,), -1)))
    s = priors.sample_gmm(2 * n, 4, n_components=10, labels=labels, generator=g)  # 2 pairs per row
    pairs = s.reshape(2 * n, 2, 2)
    nearest = torch.cdist(pairs.reshape(-1, 2), priors.gmm_component_means(10)).argmin(dim=1).reshape(2 * n, 2)
    assert (nearest[:n] == 7).float().mean() > 0.95, "labelled rows must come from their class's component"
    counts = torch.bincount(nearest[n:].flatten(), minlength=10).float()
    assert counts.min() > 0.07 * counts.sum(), "unlabelled rows spread over all components"
    assert (nearest[n:, 0] != nearest[n:, 1]).float().mean() > 0.8, "pairs are drawn independently"
    with pytest.raises(ValueError):
        priors.sample_gmm(4, 3)


def test_categorical_prior_is_one_hot_and_uniform() -> None:
    s = priors.sample_categorical(10000, K, torch.Generator().manual_seed(0))
    assert torch.all(s.sum(dim=1) == 1)
    assert torch.all((s.mean(dim=0) - 1 / K).abs() < 0.02)


def _recon(model, x, labels) -> float:
    model.eval()
    with torch.no_grad():
        y, z = model.encode(x)
        if model.cfg.variant == "supervised":
            y = torch.nn.functional.one_hot(labels, K).float()
        return float(reconstruction_loss(x, model.decode(y, z)))


@pytest.mark.parametrize("prior", priors.PRIORS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_one_step_lowers_each_variants_losses(variant: str, prior: str) -> None:
    torch.manual_seed(0)
    model = build_model(small(variant, prior))
    trainer = Trainer(model, TrainConfig(cls_every=1, progress=False))
    x, labels = batch(64)
    labels_in = labels.clone()
    if variant in ("label", "semisupervised"):
        labels_in[32:] = -1  # half unlabelled
    # fixed discriminator inputs, so only the discriminator's own update moves its loss
    with torch.no_grad():
        real = model.sample_z_prior(64, labels_in if variant == "label" else None, torch.Generator().manual_seed(5))
        fake = model.encode(x)[1]
        tag = model.label_code(labels_in) if variant == "label" else None
        real_in, fake_in = (real, fake) if tag is None else (torch.cat((real, tag), 1), torch.cat((fake, tag), 1))
        d_before = float(discriminator_loss(model.z_discriminator(real_in), model.z_discriminator(fake_in)))
        logits = model.encoder(x)[0]
        ce_before = float(torch.nn.functional.cross_entropy(logits, labels)) if logits is not None else 0.0
    recon_before = _recon(model, x, labels)
    labelled = (x[:32], labels[:32]) if variant == "semisupervised" else (None, None)
    losses = trainer.step(x, labels_in, *labelled)
    expected = {"recon", "z_dis", "z_gen"} | ({"y_dis", "y_gen", "cls"} if variant == "semisupervised" else set())
    assert set(losses) == expected and all(torch.isfinite(v) for v in losses.values())
    assert _recon(model, x, labels) < recon_before
    with torch.no_grad():
        d_after = float(discriminator_loss(model.z_discriminator(real_in), model.z_discriminator(fake_in)))
        assert d_after < d_before
        if model.cfg.has_classifier:
            assert float(torch.nn.functional.cross_entropy(model.encoder(x)[0], labels)) < ce_before


def test_training_is_deterministic_for_a_seed_and_learns_classes() -> None:
    x, labels = batch(256)
    partial = labels.clone()
    partial[40:] = -1
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(small("semisupervised"))
        history = train_semisupervised(
            model, x, partial, epochs=8, batch_size=32, seed=3, cls_every=1, lr=1e-3, progress=False
        )
        runs.append((history, model.encode(x)))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1][1], runs[1][1][1])
    accuracy = float((runs[0][1][0].argmax(1) == labels).float().mean())
    # measured 1.00 (this seed, deterministic); 0.95 leaves 12 of the 256 points for numeric drift between builds
    assert accuracy >= 0.95, f"clustered data, 40 labels, 8 short epochs: accuracy {accuracy:.2f} (measured 1.00)"


def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(small("label", "gmm", dropout_keep=0.8)).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=4, card={"classes": ["a", "b"]})
    loaded = load_checkpoint(path)
    assert loaded.cfg == model.cfg and not loaded.training
    x, _ = batch(8)
    assert torch.equal(loaded.encode(x)[1], model.encode(x)[1])
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    extras = read_checkpoint(path)
    assert extras["epoch"] == 4 and extras["card"] == {"classes": ["a", "b"]}
    semi = build_model(small("semisupervised"))
    assert isinstance(load_checkpoint(save_checkpoint(tmp_path / "s.pt", semi)), SemiSupervisedAAE)


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        AAEConfig(input_dim=4, variant="nope")
    with pytest.raises(ValueError, match="prior"):
        AAEConfig(input_dim=4, prior="uniform")
    with pytest.raises(ValueError, match="even"):
        AAEConfig(input_dim=4, code_dim=3, prior="gmm")
    with pytest.raises(ValueError, match="semisupervised"):
        SemiSupervisedAAE(small("label"))
