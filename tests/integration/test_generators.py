"""The generator zoo: every family trains and samples deterministically, the PixelCNN's fast
sampler computes what the whole network does, the shipped weights load, broken weight files
fail in one line, and ``train_generator`` runs end to end from the real configs."""

import json
import shutil

import numpy as np
import pytest
import torch
from helpers.configs import compose_config
from lightning import Callback, Trainer

from pixelproof.generators.crops import PhotoCrops
from pixelproof.generators.dcgan import DCGAN
from pixelproof.generators.diffusion import DDPM
from pixelproof.generators.latent_diffusion import LatentDiffusion
from pixelproof.generators.pixelcnn import IncrementalPixelCNN, PixelCNN
from pixelproof.generators.vae import VAE
from pixelproof.generators.zoo import (
    FAMILIES,
    GENERATOR_NAMES,
    WEIGHTS_DIR,
    ZOO,
    GeneratorWeightsError,
    load_generator,
    read_card,
)
from pixelproof.photographs import photo_names
from pixelproof.train_generator import LossTracker, train_generator

# Tiny versions of each family: the code paths of the shipped ones at a fraction of the cost.
TINY = {
    "dcgan": lambda: DCGAN(z_dim=8, g_width=8, d_width=8),
    "ddpm": lambda: DDPM(
        width=8, channel_mults=(1, 2), attn_resolutions=(16,), timesteps=50, sample_steps=3
    ),
    "vae": lambda: VAE(z_dim=4, width=8, kl_warmup_steps=2),
    "pixelcnn": lambda: PixelCNN(channels=8, n_blocks=1, first_kernel=3, n_mix=2),
    # one autoencoder batch (adversarial from the start), then diffusion; a 16x16x4 latent
    **{
        name: lambda up=up: LatentDiffusion(
            ae_channels=(8, 8),
            disc_width=4,
            disc_start=0,
            ae_steps=1,
            upsampling=up,
            width=8,
            channel_mults=(1, 2),
            attn_resolutions=(8,),
            timesteps=50,
            sample_steps=3,
        )  # fmt: skip
        for name, up in (("ldm", "nearest"), ("ldm_tconv", "tconv"))
    },
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second thread only adds synchronisation, and on a busy machine waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_trainer(max_steps: int, *callbacks) -> Trainer:
    return Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_the_registry_covers_five_families():
    assert set(ZOO) == {"dcgan", "ddpm", "vae", "pixelcnn", "ldm", "ldm_tconv"}
    assert tuple(ZOO) == GENERATOR_NAMES  # every generator's weights ship
    assert all((WEIGHTS_DIR / ZOO[n].weights).is_file() for n in GENERATOR_NAMES)
    assert FAMILIES == {
        "gan": ("dcgan",),
        "diffusion": ("ddpm",),
        "vae": ("vae",),
        "autoregressive": ("pixelcnn",),
        "latent_diffusion": ("ldm", "ldm_tconv"),
    }
    for name, entry in ZOO.items():
        assert entry.module_class().family == entry.family
        assert entry.weights == f"{name}.safetensors"
    with pytest.raises(KeyError, match="dcgan, ddpm, vae, pixelcnn, ldm, ldm_tconv"):
        load_generator("stylegan")


def test_photo_crops_are_seeded_fresh_each_epoch_and_in_range():
    dm = PhotoCrops(crops_per_epoch=8, batch_size=4, seed=1)
    assert dm.photo_names == photo_names("train")
    loader = dm.train_dataloader()
    first = torch.cat(list(loader))
    assert first.shape == (8, 3, 32, 32) and first.dtype == torch.float32
    assert -1 <= first.min() < first.max() <= 1
    assert torch.equal(first, torch.cat(list(dm.train_dataloader())))  # same seed, same crops
    loader.sampler.set_epoch(1)  # what Lightning does at each epoch
    assert not torch.equal(first, torch.cat(list(loader)))
    unit = PhotoCrops(crops_per_epoch=8, batch_size=8, seed=1, value_range=(0, 1))
    assert torch.allclose(next(iter(unit.train_dataloader())), (first + 1) / 2, atol=1e-6)


@pytest.mark.parametrize("name", list(TINY))
def test_training_steps_give_finite_losses_and_move_the_weights(name):
    torch.manual_seed(0)
    model = TINY[name]()
    before = {k: v.clone() for k, v in model.sampling_state_dict().items()}
    tracker = LossTracker()
    steps = 4 if name == "dcgan" else 2  # a GAN batch takes two optimiser steps
    tiny_trainer(steps, tracker).fit(model, PhotoCrops(crops_per_epoch=16, batch_size=8))
    assert tracker.batches == 2
    losses = tracker.last()
    assert losses and all(np.isfinite(v) for v in losses.values()), losses
    after = model.sampling_state_dict()
    moved = [
        k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])
    ]
    assert moved, "no sampling weight changed"


@pytest.mark.parametrize("name", list(TINY))
def test_sampling_is_uint8_and_a_function_of_seed_and_index(name):
    torch.manual_seed(0)
    model = TINY[name]().eval()
    with torch.no_grad():  # initialisations near zero (DCGAN's, the U-Net's zeroed outputs)
        for p in model.parameters():  # give nearly constant images: make every weight count
            p.add_(0.2 * torch.randn_like(p))
    a = model.sample(4, seed=3, batch_size=2, progress=False)
    assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8 and a.std() > 0
    # image k depends on (seed, k): the first two again, alone, to the byte
    assert np.array_equal(a[:2], model.sample(2, seed=3, batch_size=2, progress=False))
    # another batch size sums some products in another order: at most a rare level of rounding
    other = model.sample(4, seed=3, batch_size=4, progress=False).astype(int)
    diff = np.abs(a.astype(int) - other)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not np.array_equal(a[:2], model.sample(2, seed=4, batch_size=2, progress=False))


@pytest.fixture
def random_pixelcnn():
    torch.manual_seed(0)
    model = PixelCNN(channels=12, n_blocks=3, first_kernel=5, n_mix=3).eval()
    for p in model.parameters():  # larger than the initialisation, so every tap matters
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randint(0, 256, (2, 3, 14, 14)).float() / 127.5 - 1
    return model.net, x


def test_pixelcnn_rows_above_the_receptive_field_do_not_matter(random_pixelcnn):
    net, x = random_pixelcnn
    rows = net.receptive_field_rows
    assert rows == 5 // 2 + 3
    with torch.no_grad():
        full = net(x)
        for i in range(rows, x.shape[2]):
            cropped = net(x[:, :, i - rows : i + 1])[:, :, -1]  # rows [i - R, i]
            assert torch.allclose(cropped, full[:, :, i], atol=1e-5), i
        # one row fewer is not enough: the receptive field is exactly that high
        short = net(x[:, :, 1 : rows + 1])[:, :, -1]
        assert not torch.allclose(short, full[:, :, rows], atol=1e-3)


def test_pixelcnn_one_pixel_evaluation_equals_the_whole_network(random_pixelcnn):
    net, x = random_pixelcnn
    n, _, size, _ = x.shape
    with torch.no_grad():
        full = net(x)
        inc = IncrementalPixelCNN(net, n, size)
        inc.canvas[:] = x.permute(2, 3, 0, 1)  # later pixels must not matter: the masks hide them
        for i in range(size):
            for j in range(size):
                assert torch.allclose(inc.params_at(i, j), full[:, :, i, j], atol=1e-4), (i, j)
        # and a pixel's own value does not feed its parameters
        x2 = x.clone()
        x2[:, :, 5, 7] = -x2[:, :, 5, 7]
        assert torch.allclose(net(x2)[:, :, 5, 7], full[:, :, 5, 7], atol=1e-5)


class Snapshots(Callback):
    """The state of some sub-modules after every batch."""

    def __init__(self, *names: str) -> None:
        self.names, self.states = names, []

    def snap(self, module) -> None:
        self.states.append(
            {
                n: {k: v.clone() for k, v in getattr(module, n).state_dict().items()}
                for n in self.names
            }
        )

    def on_train_start(self, trainer, module) -> None:
        self.snap(module)

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.snap(module)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_latent_diffusion_trains_the_autoencoder_then_the_diffusion_model():
    torch.manual_seed(0)
    model = LatentDiffusion(
        ae_channels=(8, 8), disc_width=4, disc_start=1, ae_steps=2, width=8,
        channel_mults=(1, 2), attn_resolutions=(8,), timesteps=50, ema_start=1, ema_decay=0.5,
    )  # fmt: skip
    names = ("decoder", "discriminator", "unet", "unet_ema", "latent_stats")
    snaps, tracker = Snapshots(*names), LossTracker()
    tiny_trainer(4, snaps, tracker).fit(model, PhotoCrops(crops_per_epoch=16, batch_size=4))
    s = [dict(zip(names, (state[n] for n in names))) for state in snaps.states]  # before, 0..3
    assert len(s) == 5
    changed = lambda name, i: not _same(s[i][name], s[i + 1][name])  # by batch i
    # batch 0: reconstruction only; batch 1: the discriminator joins; 2, 3: diffusion only
    assert [changed("decoder", i) for i in range(4)] == [True, True, False, False]
    assert [changed("discriminator", i) for i in range(4)] == [False, True, False, False]
    assert [changed("unet", i) for i in range(4)] == [False, False, True, True]
    # the average copies the U-Net until ema_start steps into the stage, then follows it
    assert _same(s[3]["unet_ema"], s[3]["unet"]) and not _same(s[4]["unet_ema"], s[4]["unet"])
    for k, avg in s[4]["unet_ema"].items():
        assert torch.allclose(avg, 0.5 * s[3]["unet_ema"][k] + 0.5 * s[4]["unet"][k], atol=1e-6)
    # the diffusion stage's first batch measured the latents: per channel, zero mean, unit std
    assert (s[2]["latent_stats"]["scale"] == 1).all() and (s[2]["latent_stats"]["shift"] == 0).all()
    stats = s[3]["latent_stats"]
    assert stats["scale"].shape == (4, 1, 1) and (stats["scale"] != 1).all()
    assert (stats["shift"] != 0).all() and _same(stats, s[4]["latent_stats"])
    assert {"train/ae_l1", "train/ae_kl", "train/disc", "train/loss"} <= set(tracker.last())
    # sampling needs the decoder side and the averaged U-Net, not the encoder or the critic
    assert {k.split(".")[0] for k in model.sampling_state_dict()} == {
        "post_quant_conv",
        "decoder",
        "unet_ema",
        "latent_stats",
    }


def test_the_latent_decoders_differ_in_how_they_up_sample():
    kinds = lambda m: [type(x).__name__ for x in m.decoder.modules()]
    near, tconv = (LatentDiffusion(upsampling=u) for u in ("nearest", "tconv"))
    assert kinds(near).count("Upsample") == 2 and "ConvTranspose2d" not in kinds(near)
    assert kinds(tconv).count("ConvTranspose2d") == 2 and "Upsample" not in kinds(tconv)
    assert near.noise(np.random.default_rng(0)).shape == (4, 8, 8)  # f = 4: an 8x8x4 latent
    with torch.no_grad():
        for model in (near, tconv):
            assert model.decoder(torch.randn(2, 4, 8, 8)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="upsampling='bilinear'"):
        LatentDiffusion(upsampling="bilinear")


def test_latent_diffusion_weights_round_trip_through_the_zoo(tmp_path):
    """Trained past the autoencoder stage by ``train_generator``, written in float16 and
    reloaded by the zoo: the latent statistics come back, the training-only parts do not."""
    from safetensors.torch import load_file

    cfg = compose_config(
        "train_generator",
        "generator=ldm_tconv",
        "generator.ae_steps=1",
        "generator.ae_channels=[8,8,8]",
        "generator.disc_width=4",
        "generator.width=8",
        "generator.sample_steps=3",
        "trainer.max_steps=3",
        f"weights_dir={tmp_path / 'weights'}",
        f"paths.output_dir={tmp_path / 'run'}",
        "data.crops_per_epoch=16",
        "data.batch_size=8",
        "time_sampling=0",
        "trainer.enable_progress_bar=false",
        "threads=1",
    )
    card = train_generator(cfg)
    assert card["weights_dtype"] == "float16" and card["optimizer_steps"] == 3
    state = load_file(tmp_path / "weights" / "ldm_tconv.safetensors")
    assert {k.split(".")[0] for k in state} == set(LatentDiffusion.sampling_modules)
    assert all(v.dtype == torch.float16 for v in state.values())
    model = load_generator("ldm_tconv", tmp_path / "weights")
    assert model.hparams.upsampling == "tconv" and model.hparams.ae_channels == [8, 8, 8]
    for key in ("shift", "scale"):  # measured in the diffusion stage, written, read back
        value = getattr(model.latent_stats, key)
        assert torch.equal(value, state[f"latent_stats.{key}"].float())
        assert (value != (1 if key == "scale" else 0)).all()
    a = model.sample(3, seed=1, progress=False)
    assert np.array_equal(
        a, load_generator("ldm_tconv", tmp_path / "weights").sample(3, seed=1, progress=False)
    )


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_every_shipped_generator_loads_and_samples(name):
    model = load_generator(name)
    assert not model.training
    images = model.sample(3, seed=0, progress=False)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert images.std() > 5 and 10 < images.mean() < 245  # not blank, not noise-free grey
    card = read_card(name)
    assert card["photographs"]["names"] == list(photo_names("train"))
    assert card["generator"]["_target_"] == ZOO[name].module


@pytest.mark.parametrize("name", FAMILIES["latent_diffusion"])
def test_the_latent_diffusion_weights_load_and_sample_like_photographs(name):
    """Both decoders' weights are in the package, each its own autoencoder, and their samples
    have the crops' colour statistics: not flat, not the saturated colours of a model whose
    latents left the decoder's range (a cosine schedule did that: 15 % of values at 0 or 255)."""
    model = load_generator(name)
    card = read_card(name)
    assert card["photographs"]["names"] == list(photo_names("train"))
    assert card["weights_bytes"] < 3_000_000 and card["weights_dtype"] == "float16"
    assert model.hparams.upsampling == {"ldm": "nearest", "ldm_tconv": "tconv"}[name]
    images = model.sample(200, seed=0, progress=False)
    clipped = np.isin(images, (0, 255)).mean()
    assert 40 < images.std() < 90 and 60 < images.mean() < 160 and clipped < 0.1, clipped
    other = load_generator("ldm" if name == "ldm_tconv" else "ldm_tconv")
    assert not torch.equal(model.post_quant_conv.weight, other.post_quant_conv.weight)


def _copy_shipped(name, tmp_path):
    from pixelproof.generators.zoo import WEIGHTS_DIR

    for suffix in (".safetensors", ".json"):
        shutil.copy(WEIGHTS_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.safetensors", tmp_path / f"{name}.json"


def _assert_one_line_naming(err, path, name):
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert "make generators" in message
    assert f"python -m pixelproof.train_generator generator={name}" in message


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "other_model"])
def test_broken_weights_fail_in_one_line_with_the_retrain_command(tmp_path, damage):
    weights, card = _copy_shipped("vae", tmp_path)
    if damage == "missing":
        weights.unlink()
    elif damage == "garbage":
        weights.write_bytes(b"not a safetensors file")
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:  # a valid file of another generator: its tensors do not fit the card's model
        shutil.copy(_copy_shipped("dcgan", tmp_path)[0], weights)
    with pytest.raises(GeneratorWeightsError) as err:
        load_generator("vae", tmp_path)
    _assert_one_line_naming(err, weights, "vae")


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_broken_model_card_fails_in_one_line(tmp_path, damage):
    _, card = _copy_shipped("ddpm", tmp_path)
    if damage == "missing":
        card.unlink()
    else:
        card.write_text("{ not json")
    with pytest.raises(GeneratorWeightsError) as err:
        load_generator("ddpm", tmp_path)
    _assert_one_line_naming(err, card, "ddpm")


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_train_generator_end_to_end_writes_loadable_weights(name, tmp_path):
    cfg = compose_config(
        "train_generator",
        f"generator={name}",
        "trainer.max_steps=2",
        f"weights_dir={tmp_path / 'weights'}",
        f"paths.output_dir={tmp_path / 'run'}",
        "data.crops_per_epoch=16",
        "data.batch_size=8",
        "time_sampling=2",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "threads=1",
    )
    card = train_generator(cfg)
    weights, card_path = (
        tmp_path / "weights" / f"{name}.safetensors",
        tmp_path / "weights" / f"{name}.json",
    )
    assert weights.is_file() and json.loads(card_path.read_text()) == card
    assert card["iterations"] == (1 if name == "dcgan" else 2) and card["optimizer_steps"] == 2
    assert card["command"].startswith(f"python -m pixelproof.train_generator generator={name}")
    assert card["photographs"]["names"] == list(photo_names("train"))
    assert card["parameters"] > 0 and card["weights_bytes"] == weights.stat().st_size
    assert all(np.isfinite(v) for v in card["final_losses"].values())
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()
    # time_sampling reloaded the written files with load_generator and sampled from them
    assert card["sampling"]["images"] == 2 and 0 <= card["sampling"]["mean_pixel"] <= 255
    assert not load_generator(name, tmp_path / "weights").training
