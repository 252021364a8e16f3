"""``import-reference``: weights saved by a method's reference code, as a Lightning checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Literal, Optional

from cyclegan_pl.methods import METHODS
from cyclegan_pl.weights.reference_import import AUTO, imported_module, save_imported_checkpoint

#: A method's name, or ``auto``.
MethodChoice = Literal[(*METHODS.names(), AUTO)]  # type: ignore[valid-type]


def import_reference(
    source: Path,
    output: Path,
    model: MethodChoice = AUTO,  # type: ignore[valid-type]
    epoch: Optional[str] = None,
    direction: Literal["AtoB", "BtoA"] = "AtoB",
    generator: Optional[str] = None,
    discriminator: Optional[str] = None,
    ngf: Optional[int] = None,
    ndf: Optional[int] = None,
    n_layers_d: Optional[int] = None,
    norm: Optional[str] = None,
    dropout: Optional[bool] = None,
    start_epoch: Optional[int] = None,
    hparams: Optional[Dict[str, Any]] = None,
) -> Path:
    """Convert weights saved by a method's reference code into a Lightning checkpoint.

    Reads a reference run folder or one generator file, builds the method with the architecture
    the tensors were saved from (inferred from their names and shapes unless given), loads every
    file strictly and writes a ``.ckpt`` that ``translate``, ``test``, ``predict``, ``export`` and
    ``fit --ckpt_path`` accept. Each method maps the reference's network names to ours (CycleGAN:
    G_A -> gen_ab, G_B -> gen_ba, D_A -> disc_b since D_A judges domain B, D_B -> disc_a;
    pix2pix: G -> gen, D -> disc; CUT: those and F -> projection). Old files with InstanceNorm
    running statistics, without BatchNorm ``num_batches_tracked`` or saved through DataParallel
    load as the reference loader does.

    The reference saves no optimizer state: ``fit --ckpt_path`` on the result starts the Adam
    optimizers fresh (lr from the module, 2e-4 unless ``hparams`` says otherwise) and the image
    pools empty, like the reference's ``--continue_train``. It continues at epoch
    ``start_epoch`` (global step 0), so the learning-rate schedule resumes there.

    Args:
        source: a reference run folder (``checkpoints/NAME``) holding ``<epoch>_net_<NAME>.pth``
            files (CycleGAN: G_A, G_B, D_A, D_B; pix2pix: G, D; CUT: G, D, F), or one generator
            file such as a published ``horse2zebra.pth``. A folder with only ``<epoch>_net_G.pth``
            is imported like a single generator file.
        output: the ``.ckpt`` file to write; its folder is created. Written atomically.
        model: the method, or ``auto``: from the file names of a run folder and, where several
            methods save the same names, the generator's architecture (a U-Net makes a Pix2Pix, an
            anti-aliased ResNet a CUT, another ResNet a CycleGAN: the published architectures).
        epoch: which files of a run folder to import, e.g. ``latest``, ``200`` or ``iter_5000``;
            default ``latest`` when present, else the highest epoch number.
        direction: for a single generator file, the generator it fills (CycleGAN: ``AtoB`` is
            ``gen_ab``, the reference's G_A; ``BtoA`` is ``gen_ba``). The other networks keep
            their random initialization (a note is printed). Pix2Pix and CUT allow only ``AtoB``.
        generator: generator architecture (``resnet_9blocks``, ``unet_256``, ...); inferred.
        discriminator: discriminator architecture (``basic``, ``n_layers``, ``pixel``); inferred
            from the discriminator files, else the model's default.
        ngf: generator filters of the first conv layer; inferred.
        ndf: discriminator filters of the first conv layer; inferred from the discriminator files.
        n_layers_d: strided layers of an ``n_layers`` discriminator; inferred.
        norm: ``instance``, ``batch`` or ``none``. Inferred as ``batch`` when the files hold
            BatchNorm weights, else ``instance``: set ``none`` yourself for a run trained with
            ``--norm none``, whose files look the same as instance norm ones.
        dropout: dropout in the generator. Inferred for ResNet generators; for U-Nets (whose
            files cannot tell) the model's default: True for Pix2Pix, False for CycleGAN.
        start_epoch: epochs the checkpoint counts as completed, where ``fit --ckpt_path``
            continues; default: the number in the file names (``200_net_G_A.pth`` -> 200),
            else 0 (``latest_`` files and published models carry no epoch). Lightning refuses to
            resume when ``trainer.max_epochs`` is below it: use 0 to fine-tune on a fresh schedule.
        hparams: further arguments of the method stored in the checkpoint, e.g.
            ``{"lambda_identity": 0, "lr": 1e-4, "eval_mode": true}``; the named options above
            take precedence.

    Returns:
        The path of the written checkpoint.
    """
    source, output = Path(source), Path(output)
    named = dict(
        generator=generator,
        discriminator=discriminator,
        ngf=ngf,
        ndf=ndf,
        n_layers_d=n_layers_d,
        norm=norm,
        dropout=dropout,
    )
    module, start_epoch, provenance = imported_module(source, model, epoch, direction, named, start_epoch, hparams)
    save_imported_checkpoint(module, start_epoch, provenance, output)
    loaded = ", ".join(f"{provenance['reference_names'][a]} -> {a}" for a in provenance["files"])
    print(f"imported {loaded} into a {type(module).__name__} checkpoint at {output} (epoch {start_epoch})")
    return output
