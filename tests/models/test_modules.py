"""Behaviour of the CycleGAN and Pix2Pix modules beyond the reference iteration."""

from __future__ import annotations

import copy
import inspect

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from cyclegan_pl import CUT, CycleGAN, Pix2Pix
from cyclegan_pl.errors import NonFiniteLossError
from cyclegan_pl.weights import load_checkpoint

TINY_CYCLEGAN = dict(generator="resnet_2blocks", ngf=8, ndf=8)
TINY_PIX2PIX = dict(generator="unet_32", ngf=8, ndf=8)


def declared_default(cls, name: str):
    """The default of ``name`` a config of ``cls`` gets: from the first __init__ in the MRO declaring it."""
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get(name) if "__init__" in vars(klass) else None
        if parameter is not None:
            return parameter.default
    raise KeyError(name)


def test_defaults_are_the_published_recipe():
    hp = CycleGAN(**TINY_CYCLEGAN).hparams
    assert (hp.discriminator, hp.norm, hp.dropout, hp.gan_mode) == ("basic", "instance", False, "lsgan")
    assert (hp.lambda_a, hp.lambda_b, hp.lambda_identity) == (10.0, 10.0, 0.5)
    assert (hp.lr, hp.beta1, hp.beta2, hp.init_type, hp.init_gain) == (2e-4, 0.5, 0.999, "normal", 0.02)
    assert declared_default(CycleGAN, "generator") == "resnet_9blocks"
    hp = Pix2Pix(**TINY_PIX2PIX).hparams
    assert declared_default(Pix2Pix, "generator") == "unet_256"
    assert declared_default(CUT, "init_type") == "xavier" and CUT(ngf=8, ndf=8).hparams.init_type == "xavier"
    assert (hp.norm, hp.dropout, hp.gan_mode, hp.lambda_l1, hp.eval_mode) == ("batch", True, "vanilla", 100.0, False)


def test_training_logs_every_loss_term_and_lr(make_batch, fit_batches):
    module = CycleGAN(**TINY_CYCLEGAN)
    trainer = fit_batches(module, [make_batch(seed=i) for i in range(4)], log_every_n_steps=2)
    logged = set(trainer.logged_metrics)
    for name in ["g_gan_ab", "g_gan_ba", "cycle_a", "cycle_b", "idt_a", "idt_b", "g", "d_a", "d_b"]:
        assert {f"loss/{name}_step", f"loss/{name}_epoch"} <= logged, name
    assert {"lr/g", "lr/d"} <= logged
    trainer = fit_batches(Pix2Pix(**TINY_PIX2PIX), [make_batch()], log_every_n_steps=1)
    assert {"loss/g_gan_step", "loss/l1_step", "loss/d_step", "loss/d_epoch"} <= set(trainer.logged_metrics)


def test_epoch_means_cover_every_step_and_step_values_follow_log_every_n_steps(make_batch, fit_batches):
    seen = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(pl_module.loss_log._sums["g"].item() / pl_module.loss_log._count)

    trainer = fit_batches(
        CycleGAN(**TINY_CYCLEGAN), [make_batch(seed=i) for i in range(5)], log_every_n_steps=3, callbacks=[Record()]
    )
    # The epoch mean is the mean over all 5 steps, not over the logged ones.
    assert trainer.logged_metrics["loss/g_epoch"].item() == pytest.approx(seen[-1], rel=1e-6)
    assert len(seen) == 5


def test_identity_terms_skipped_when_weight_is_zero(make_batch, fit_batches):
    trainer = fit_batches(CycleGAN(lambda_identity=0.0, **TINY_CYCLEGAN), [make_batch()], log_every_n_steps=1)
    assert not any("idt" in name for name in trainer.logged_metrics)
    with pytest.raises(ValueError, match="lambda_identity"):
        CycleGAN(input_nc=1, output_nc=3, **TINY_CYCLEGAN)


def test_batched_calls_give_the_same_images_and_losses(make_batch):
    # Compared before the optimizer: Adam turns the rounding noise of the (mathematically zero)
    # gradients of conv biases before instance norm into full-size steps.
    torch.manual_seed(0)
    module = CycleGAN(**TINY_CYCLEGAN)
    batch = make_batch(n=2)
    plain_images = module.generate(batch["A"], batch["B"])
    plain_losses = module.generator_losses(plain_images)
    plain_d = module.discriminator_loss(module.disc_b, batch["B"], plain_images["fake_b"])
    module.hparams.batched_calls = True
    batched_images = module.generate(batch["A"], batch["B"])
    assert batched_images.keys() == plain_images.keys()
    for name, image in plain_images.items():
        torch.testing.assert_close(batched_images[name], image, rtol=0, atol=1e-5, msg=name)
    for name, loss in module.generator_losses(batched_images).items():
        torch.testing.assert_close(loss, plain_losses[name], rtol=1e-5, atol=1e-6, msg=name)
    batched_d = module.discriminator_loss(module.disc_b, batch["B"], batched_images["fake_b"])
    torch.testing.assert_close(batched_d, plain_d, rtol=1e-5, atol=1e-6)


def test_wgangp_adds_the_gradient_penalty(make_batch):
    module = CycleGAN(gan_mode="wgangp", **TINY_CYCLEGAN)
    batch = make_batch()
    fake = torch.rand_like(batch["A"]) * 2 - 1
    torch.manual_seed(5)
    with_penalty = module.discriminator_loss(module.disc_a, batch["A"], fake)
    module.hparams.gp_weight = 0.0
    torch.manual_seed(5)
    without = module.discriminator_loss(module.disc_a, batch["A"], fake)
    from cyclegan_pl.losses import gradient_penalty

    torch.manual_seed(5)
    penalty = gradient_penalty(module.disc_a, batch["A"], fake)
    assert penalty.item() > 0
    torch.testing.assert_close(with_penalty - without, 10.0 * penalty)


def test_nonfinite_loss_stops_with_term_and_step(make_batch, fit_batches):
    batch = make_batch()
    batch["A"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"(?s)cycle_a.*global step 0.*on_nonfinite=skip"):
        fit_batches(CycleGAN(**TINY_CYCLEGAN), [batch])


def test_nonfinite_loss_skip_leaves_weights_untouched(make_batch, fit_batches):
    good, bad = make_batch(seed=1), make_batch(seed=2)
    bad["B"][0, 1, 3, 3] = float("inf")
    module = CycleGAN(on_nonfinite="skip", **TINY_CYCLEGAN)
    before = copy.deepcopy(module.state_dict())
    fit_batches(module, [bad])
    assert module.nonfinite.skipped == 2  # the G step and the D step
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key
    fit_batches(module, [good])  # training goes on normally afterwards
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_translate_any_size_and_predict_step():
    module = CycleGAN(**TINY_CYCLEGAN)
    for shape in [(1, 3, 30, 45), (2, 3, 17, 33), (1, 3, 5, 6)]:
        images = torch.rand(shape) * 2 - 1
        for direction in ["AtoB", "BtoA"]:
            out = module.translate(images, direction)
            assert out.shape == images.shape and out.abs().max() <= 1
    image = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    batch = {"image": image, "path": ["/x/a.jpg"], "relpath": ["a.jpg"]}
    prediction = module.predict_step(batch, 0)
    assert prediction["images"].shape == (1, 3, 20, 24)
    assert prediction["path"] == ["/x/a.jpg"] and prediction["relpath"] == ["a.jpg"]
    torch.testing.assert_close(prediction["images"], module.translate(image, "AtoB"))
    # The loader names the direction its images are read for (collated: one per image).
    backwards = module.predict_step({**batch, "direction": ["BtoA"]}, 0)["images"]
    torch.testing.assert_close(backwards, module.translate(image, "BtoA"))
    assert not torch.allclose(backwards, prediction["images"])
    with pytest.raises(ValueError, match="AtoB"):
        Pix2Pix(**TINY_PIX2PIX).translate(batch["image"], "BtoA")


def test_inference_mode_reference_vs_eval():
    torch.manual_seed(0)
    module = Pix2Pix(generator="unet_64", ngf=8, ndf=8)  # unet_32 has no block with dropout
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    stats_before = copy.deepcopy({k: v for k, v in module.state_dict().items() if "running" in k or "num_batches" in k})
    # Reference behaviour: dropout on at test time, so two calls differ, but the running
    # statistics being trained are left alone.
    assert not torch.allclose(module.translate(images), module.translate(images))
    for key, value in stats_before.items():
        assert torch.equal(module.state_dict()[key], value), key
    assert module.gen.training and module.training
    module.eval_mode = True
    torch.testing.assert_close(module.translate(images), module.translate(images), rtol=0, atol=0)


def test_visuals_and_evaluation_metrics(make_batch, make_trainer):
    module = CycleGAN(**TINY_CYCLEGAN)
    batch = make_batch(n=2)
    assert list(module.visuals(batch)) == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    trainer = make_trainer(limit_val_batches=None)
    metrics = trainer.validate(module, DataLoader([batch], batch_size=None), verbose=False)[0]
    assert {"val/cycle_a", "val/cycle_b", "val/idt_a", "val/idt_b"} <= set(metrics)
    pix = Pix2Pix(**TINY_PIX2PIX)
    assert list(pix.visuals(batch)) == ["input", "output", "target"]
    metrics = trainer.test(pix, DataLoader([batch], batch_size=None), verbose=False)[0]
    assert set(metrics) == {"test/l1"}


@pytest.mark.parametrize("module_class,kwargs", [(CycleGAN, TINY_CYCLEGAN), (Pix2Pix, TINY_PIX2PIX)])
def test_load_checkpoint_picks_the_method(tmp_path, make_batch, fit_batches, module_class, kwargs):
    module = module_class(**kwargs)
    trainer = fit_batches(module, [make_batch()])
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_checkpoint(path)
    assert type(loaded) is module_class
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_speed_options_run(make_batch, fit_batches):
    module = CycleGAN(channels_last=True, gradient_checkpointing=True, optimizer_impl="foreach", **TINY_CYCLEGAN)
    fit_batches(module, [make_batch()])
    assert module.gen_ab.gradient_checkpointing


@pytest.mark.parametrize("module_class, options", [(CycleGAN, TINY_CYCLEGAN), (Pix2Pix, TINY_PIX2PIX)])
def test_memory_options_give_the_same_training_step(module_class, options, make_batch, fit_batches):
    torch.manual_seed(0)
    plain = module_class(**options)
    checkpointed = module_class(gradient_checkpointing=True, discriminator_checkpointing=True, **options)
    checkpointed.load_state_dict(plain.state_dict())
    assert all(net.gradient_checkpointing for net in checkpointed.generators() + checkpointed.discriminators())
    batch = make_batch()
    for module in (plain, checkpointed):
        fit_batches(module, [batch])
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(checkpointed.state_dict()[key], value, rtol=0, atol=1e-5, msg=key)


def test_nonfinite_ignore_does_not_check(make_batch, fit_batches):
    batch = make_batch()
    batch["A"][0, 0, 0, 0] = float("nan")
    module = CycleGAN(on_nonfinite="ignore", **TINY_CYCLEGAN)
    fit_batches(module, [batch])  # no error: the reference's behaviour, chosen explicitly
    assert module.nonfinite.skipped == 0
    assert not all(torch.isfinite(p).all() for p in module.gen_ab.parameters())


def test_sync_batch_norm_uses_local_statistics_at_inference(tmp_path):
    # With SyncBatchNorm (multi-GPU pix2pix) a translation must neither depend on the images of
    # other processes nor run a collective (ranks hold different numbers of images to translate).
    import torch.distributed as dist

    module = Pix2Pix(generator="unet_32", ngf=8, ndf=8)
    plain = copy.deepcopy(module.gen)
    module.gen = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module.gen)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match="SyncBatchNorm expected input tensor to be on GPU"):
            module.gen.train()(images)  # a synchronised forward: what inference must not run
        translated = module.translate(images, "AtoB")
    finally:
        dist.destroy_process_group()
    with torch.no_grad():
        expected = plain.train()(images)
    torch.testing.assert_close(translated, expected)
    assert isinstance(module.gen.model.model[1].model[2], torch.nn.SyncBatchNorm)  # put back
