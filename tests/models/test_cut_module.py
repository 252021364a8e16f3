"""CUT beyond the reference iteration: checkpoints, precision, speed options, export, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from cyclegan_pl import CUT
from cyclegan_pl.commands import export
from cyclegan_pl.errors import NonFiniteLossError
from cyclegan_pl.weights import checkpoint_method, load_checkpoint

# resnet_9blocks keeps the published nce_layers valid; ngf 8 keeps it small.
TINY_CUT = dict(ngf=8, ndf=8, num_patches=16)


def test_checkpoint_without_class_path_is_recognised_and_reloads(tmp_path, make_batch, fit_batches):
    module = CUT(**TINY_CUT)
    trainer = fit_batches(module, [make_batch()])
    # D, then G and F: three optimizer steps per iteration, which is what max_steps counts
    assert trainer.global_step == 3
    path = tmp_path / "cut.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"].pop("_class_path", None)
    assert checkpoint_method(checkpoint) is CUT
    loaded = load_checkpoint(path)
    assert type(loaded) is CUT and loaded.hparams.num_patches == 16
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_logs_every_term_and_the_three_learning_rates(make_batch, fit_batches):
    trainer = fit_batches(CUT(**TINY_CUT), [make_batch()], log_every_n_steps=1)
    logged = set(trainer.logged_metrics)
    assert {"loss/d_step", "loss/g_gan_step", "loss/nce_step", "loss/nce_idt_step", "loss/g_step"} <= logged
    assert {"lr/g", "lr/d", "lr/f"} <= logged
    fastcut = fit_batches(CUT(nce_idt=False, flip_equivariance=True, **TINY_CUT), [make_batch()], log_every_n_steps=1)
    assert "loss/nce_step" in fastcut.logged_metrics and "loss/nce_idt_step" not in fastcut.logged_metrics


def test_batched_discriminator_call_gives_the_same_loss(make_batch):
    batch = make_batch(n=2)
    module = CUT(**TINY_CUT)
    with torch.no_grad():
        fake = module.gen(batch["A"])
        plain = module.discriminator_loss(module.disc, batch["B"], fake, fake_first=True)
        module.hparams.batched_calls = True
        batched = module.discriminator_loss(module.disc, batch["B"], fake, fake_first=True)
    torch.testing.assert_close(batched, plain, rtol=1e-5, atol=1e-6)


def test_speed_options_and_bf16_train(make_batch, fit_batches):
    module = CUT(
        channels_last=True, gradient_checkpointing=True, optimizer_impl="foreach", batched_calls=True, **TINY_CUT
    )
    initial = copy.deepcopy(module.state_dict())
    fit_batches(module, [make_batch()], precision="bf16-mixed")
    assert module.gen.gradient_checkpointing
    for name, value in module.named_parameters():
        assert torch.isfinite(value).all(), name
    assert not torch.equal(initial["projection.mlp_0.0.weight"], module.projection.mlp_0[0].weight)


def test_gradient_checkpointing_gives_the_same_step(make_batch, fit_batches):
    torch.manual_seed(0)
    plain = CUT(**TINY_CUT)
    checkpointed = copy.deepcopy(plain)
    checkpointed.hparams.gradient_checkpointing = True
    checkpointed.gen.gradient_checkpointing = True
    batch = make_batch()
    fit_batches(plain, [batch])
    fit_batches(checkpointed, [batch])
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(checkpointed.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)


def test_nonfinite_loss_names_the_term(make_batch, fit_batches):
    batch = make_batch()
    batch["B"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"Loss term\(s\) d became non-finite"):
        fit_batches(CUT(**TINY_CUT), [batch])


def test_torchscript_and_onnx_export_match_translate(tmp_path, make_batch, fit_batches):
    module = CUT(**TINY_CUT)
    trainer = fit_batches(module, [make_batch()])
    ckpt = tmp_path / "cut.ckpt"
    trainer.save_checkpoint(ckpt)
    images = torch.rand(1, 3, 30, 45) * 2 - 1
    expected = load_checkpoint(ckpt).translate(images)
    scripted = torch.jit.load(str(export(ckpt, tmp_path / "cut.pt", format="torchscript")))
    with torch.no_grad():
        assert (scripted(images) - expected).abs().max() < 1e-5
    ort = pytest.importorskip("onnxruntime")
    onnx_file = export(ckpt, tmp_path / "cut.onnx", format="onnx", height=32, width=32, onnx_exporter="legacy")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": images.numpy()})
    assert abs(got - expected.numpy()).max() < 1e-4
    with pytest.raises(ValueError, match="CUT translates AtoB only"):
        export(ckpt, tmp_path / "back.pt", direction="BtoA")
