from __future__ import annotations

from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from cyclegan_pl.callbacks import LinearDecay


def reference_factor(epoch_1_based: int, n_epochs=100, n_epochs_decay=100, epoch_count=1) -> float:
    """docs/method.md#learning-rate-schedule: the N-th epoch runs at lr_factor(N - 1)."""
    e = epoch_1_based - 1
    return 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1)


def test_factor_matches_the_reference_for_every_epoch():
    schedule = LinearDecay()
    for epoch in range(1, 201):
        assert schedule.factor(epoch - 1) == pytest.approx(reference_factor(epoch), abs=1e-12)
    assert all(schedule.factor(e) == 1.0 for e in range(100))
    assert schedule.factor(100) == pytest.approx(100 / 101)
    assert schedule.factor(199) == pytest.approx(1 / 101)
    assert schedule.factor(500) == 0.0  # past the schedule: 0, never negative


def test_epoch_start_sets_both_optimizers(cyclegan):
    module = cyclegan()
    optimizers = module.configure_optimizers()
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    schedule = LinearDecay()
    for epoch in (0, 99, 100, 150, 199):
        schedule.on_train_epoch_start(SimpleNamespace(current_epoch=epoch, optimizers=optimizers), module)
        expected = 2e-4 * reference_factor(epoch + 1)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                assert group["lr"] == pytest.approx(expected, rel=1e-12)
                assert group["initial_lr"] == 2e-4
        assert logged["lr_factor"] == pytest.approx(reference_factor(epoch + 1))


def lr_recorder(probe):
    return probe(
        "on_train_batch_start",
        lambda trainer, module: (trainer.current_epoch, [opt.param_groups[0]["lr"] for opt in trainer.optimizers]),
    )


def test_resume_in_mid_decay_gives_the_straight_run_lrs(tmp_path, cyclegan, tiny_data, trainer_for, probe):
    straight_lrs = lr_recorder(probe)
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpts", save_top_k=-1, every_n_epochs=1)
    trainer = trainer_for(
        tmp_path / "straight",
        [LinearDecay(2, 2), straight_lrs, every_epoch],
        max_epochs=4,
        limit_val_batches=0,
        enable_checkpointing=True,
    )
    trainer.fit(cyclegan(), datamodule=tiny_data(train_len=2, batch_size=2))
    by_epoch = dict(straight_lrs.records)
    assert [by_epoch[e][0] for e in range(4)] == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])
    assert all(lrs[0] == lrs[1] for lrs in by_epoch.values())
    assert trainer.callback_metrics["lr_factor"] == pytest.approx(1 / 3)

    # Resume from the checkpoint written after the 3rd epoch (0-based epoch 2), in mid-decay.
    (ckpt,) = (tmp_path / "ckpts").glob("epoch=2-*.ckpt")
    resumed_lrs = lr_recorder(probe)
    resumed = trainer_for(tmp_path / "resumed", [LinearDecay(2, 2), resumed_lrs], max_epochs=4, limit_val_batches=0)
    resumed.fit(cyclegan(), datamodule=tiny_data(train_len=2, batch_size=2), ckpt_path=ckpt)
    assert [epoch for epoch, _ in resumed_lrs.records] == [3]
    assert resumed_lrs.records[0][1] == pytest.approx(by_epoch[3], rel=1e-12)


def test_warns_when_max_epochs_does_not_end_the_schedule():
    schedule = LinearDecay(100, 100)
    with pytest.warns(UserWarning, match="max_epochs=200"):
        schedule.on_fit_start(SimpleNamespace(max_epochs=50), None)


def test_no_warning_when_max_epochs_matches(recwarn):
    LinearDecay(3, 4).on_fit_start(SimpleNamespace(max_epochs=7), None)
    assert not [w for w in recwarn if "LinearDecay" in str(w.message)]


def test_published_schedule_resumed_at_epoch_150(tmp_path, cyclegan, tiny_data, trainer_for, probe):
    # The real 100 + 100 schedule: run 150 one-step epochs, resume from that checkpoint and check
    # epochs 151 and 152 (1-based) against docs/method.md's formula.
    at_150 = ModelCheckpoint(dirpath=tmp_path / "ckpts", save_top_k=-1, every_n_epochs=150)
    trainer = trainer_for(
        tmp_path / "first",
        [LinearDecay(100, 100), at_150],
        max_epochs=150,
        limit_val_batches=0,
        enable_checkpointing=True,
    )
    trainer.fit(cyclegan(), datamodule=tiny_data(train_len=1, batch_size=1))
    (ckpt,) = (tmp_path / "ckpts").glob("epoch=149-*.ckpt")
    resumed_lrs = lr_recorder(probe)
    resumed = trainer_for(
        tmp_path / "resumed", [LinearDecay(100, 100), resumed_lrs], max_epochs=152, limit_val_batches=0
    )
    resumed.fit(cyclegan(), datamodule=tiny_data(train_len=1, batch_size=1), ckpt_path=ckpt)
    assert [epoch for epoch, _ in resumed_lrs.records] == [150, 151]
    for epoch, lrs in resumed_lrs.records:
        assert lrs == pytest.approx([2e-4 * reference_factor(epoch + 1)] * 2, rel=1e-12)
    assert resumed_lrs.records[0][1][0] == pytest.approx(2e-4 * 50 / 101)
