"""Training throughput: our Lightning loop against a plain PyTorch loop of the published iteration (docs/method.md).

DCLGAN and UNSB are measured through Lightning only (their plain iterations are the tests' references).

Each measurement runs in its own process (so peak memory is that run's alone) on one fixed
in-memory batch: the data pipeline is measured separately by data_throughput.py.

    python benchmarks/train_throughput.py                       # CPU, 64 and 128 px, real widths
    python benchmarks/train_throughput.py --device cuda --precision bf16-mixed --sizes '[256]'

Prints a markdown table: iterations/s, peak memory (CUDA: max allocated; CPU: peak RSS of the
process) and the ratio to the plain loop.
"""

from __future__ import annotations

import time
from typing import Dict, List, Literal

import numpy as np
import torch
import torch.nn.functional as F
from fresh_process import in_fresh_process, peak_mib

Method = Literal["cyclegan", "pix2pix", "cut", "fastcut", "dclgan", "dclgan_matmul", "unsb"]
# Methods measured only through Lightning: their plain-PyTorch iterations are the tests' references
# (tests/models/reference_dclgan.py, reference_unsb.py), which the modules equal to 1e-6.
LIGHTNING_ONLY = ("dclgan", "dclgan_matmul", "unsb")
Loop = Literal["plain", "lightning", "lightning+batched"]


def _batch(method: str, size: int, batch_size: int) -> Dict:
    generator = torch.Generator().manual_seed(0)
    image = lambda: torch.rand(batch_size, 3, size, size, generator=generator) * 2 - 1  # noqa: E731
    # A2: UNSB's second, independent A batch (the other methods ignore it).
    return {"A": image(), "B": image(), "A2": image(), "A_paths": ["a"] * batch_size, "B_paths": ["b"] * batch_size}


def _module(method: str, size: int, ngf: int, batched: bool):
    from cyclegan_pl import CUT, DCLGAN, UNSB, CycleGAN, Pix2Pix
    from cyclegan_pl.models.cut import FASTCUT_OPTIONS

    if method == "cyclegan":
        return CycleGAN(ngf=ngf, ndf=ngf, batched_calls=batched)
    if method in ("dclgan", "dclgan_matmul"):
        pairwise = "matmul" if method == "dclgan_matmul" else "broadcast"
        return DCLGAN(ngf=ngf, ndf=ngf, batched_calls=batched, nce_pairwise=pairwise)
    if method == "unsb":
        # The published command's weights; the iteration's cost depends on its drawn step t.
        return UNSB(ngf=ngf, ndf=ngf, batched_calls=batched, lambda_sb=1.0)
    if method in ("cut", "fastcut"):
        return CUT(ngf=ngf, ndf=ngf, batched_calls=batched, **(FASTCUT_OPTIONS if method == "fastcut" else {}))
    return Pix2Pix(generator=f"unet_{size}", ngf=ngf, ndf=ngf, batched_calls=batched)


def _autocast(device: str, precision: str):
    if precision.startswith("bf16"):
        return torch.autocast(device, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device, dtype=torch.float16)
    return torch.autocast(device, enabled=False)


def _plain_iterations(method: str, size: int, ngf: int, device: str, precision: str, batch_size: int, steps: int):
    """The published iteration (docs/method.md) written out in plain PyTorch; yields after each iteration."""
    module = _module(method, size, ngf, batched=False)
    batch = {k: v.to(device) for k, v in _batch(method, size, batch_size).items() if torch.is_tensor(v)}
    real_a, real_b = batch["A"], batch["B"]
    scaler = torch.amp.GradScaler(device, enabled=precision.startswith("16"))

    def gan(pred, real):
        target = torch.full_like(pred, 1.0 if real else 0.0)
        if method != "pix2pix":
            return F.mse_loss(pred.float(), target.float())
        return F.binary_cross_entropy_with_logits(pred.float(), target.float())

    def set_grad(nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    if method == "cyclegan":
        g_a, g_b, d_a, d_b = (m.to(device) for m in (module.gen_ab, module.gen_ba, module.disc_b, module.disc_a))
        opt_g = torch.optim.Adam(list(g_a.parameters()) + list(g_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
        for _ in range(steps):
            with _autocast(device, precision):
                fake_b = g_a(real_a)
                rec_a = g_b(fake_b)
                fake_a = g_b(real_b)
                rec_b = g_a(fake_a)
                set_grad([d_a, d_b], False)
                opt_g.zero_grad()
                loss_g = (
                    gan(d_a(fake_b), True)
                    + gan(d_b(fake_a), True)
                    + 10 * F.l1_loss(rec_a, real_a)
                    + 10 * F.l1_loss(rec_b, real_b)
                    + 5 * F.l1_loss(g_a(real_b), real_b)
                    + 5 * F.l1_loss(g_b(real_a), real_a)
                )
            scaler.scale(loss_g).backward()
            scaler.step(opt_g)
            set_grad([d_a, d_b], True)
            opt_d.zero_grad()
            with _autocast(device, precision):
                loss_d = 0.5 * (gan(d_a(real_b), True) + gan(d_a(fake_b.detach()), False))
                loss_d = loss_d + 0.5 * (gan(d_b(real_a), True) + gan(d_b(fake_a.detach()), False))
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)
            scaler.update()
            yield
    elif method in ("cut", "fastcut"):
        yield from _plain_cut_iterations(module, real_a, real_b, gan, set_grad, scaler, device, precision, steps)
    else:
        net_g, net_d = module.gen.to(device), module.disc.to(device)
        opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        for _ in range(steps):
            with _autocast(device, precision):
                fake_b = net_g(real_a)
                set_grad([net_d], True)
                opt_d.zero_grad()
                loss_d = 0.5 * (
                    gan(net_d(torch.cat([real_a, fake_b.detach()], 1)), False)
                    + gan(net_d(torch.cat([real_a, real_b], 1)), True)
                )
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)
            set_grad([net_d], False)
            opt_g.zero_grad()
            with _autocast(device, precision):
                loss_g = gan(net_d(torch.cat([real_a, fake_b], 1)), True) + 100 * F.l1_loss(fake_b, real_b)
            scaler.scale(loss_g).backward()
            scaler.step(opt_g)
            scaler.update()
            yield


def _plain_cut_iterations(module, real_a, real_b, gan, set_grad, scaler, device, precision, steps):
    """The published CUT iteration: keys encoded with gradients and NumPy-drawn positions, as there."""
    hp = module.hparams
    layers = list(hp.nce_layers)
    net_g, net_d, net_f = (m.to(device) for m in (module.gen, module.disc, module.projection))
    opt_g, opt_d, opt_f = (torch.optim.Adam(n.parameters(), lr=2e-4, betas=(0.5, 0.999)) for n in (net_g, net_d, net_f))
    n = real_a.shape[0]

    def encode(x):
        feats = []
        for index, layer in enumerate(net_g.model[: layers[-1] + 1]):
            x = layer(x)
            if index in layers:
                feats.append(x)
        return feats

    def project(feats, ids=None):
        out, chosen = [], []
        for k, feat in enumerate(feats):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)
            pick = (
                ids[k] if ids is not None else torch.as_tensor(np.random.permutation(flat.shape[1])[: hp.num_patches])
            )
            rows = net_f.head(k)(flat[:, pick.to(feat.device), :].flatten(0, 1))
            out.append(rows / (rows.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7))
            chosen.append(pick)
        return out, chosen

    def nce(src, tgt, flipped):
        feat_q = encode(tgt)
        if flipped:
            feat_q = [f.flip(3) for f in feat_q]
        keys, ids = project(encode(src))
        queries, _ = project(feat_q, ids)
        total = 0.0
        for q, k in zip(queries, keys, strict=True):
            k = k.detach()
            rows, dim = q.shape
            positive = (q * k).sum(1, keepdim=True)
            negatives = torch.bmm(q.view(n, -1, dim), k.view(n, -1, dim).transpose(2, 1))
            eye = torch.eye(negatives.shape[1], device=q.device, dtype=torch.bool)[None]
            logits = torch.cat([positive, negatives.masked_fill(eye, -10.0).flatten(0, 1)], 1) / hp.nce_temperature
            target = torch.zeros(rows, dtype=torch.long, device=q.device)
            total = total + (F.cross_entropy(logits.float(), target, reduction="none") * hp.lambda_nce).mean()
        return total / len(layers)

    for _ in range(steps):
        flipped = bool(hp.flip_equivariance and np.random.random() < 0.5)
        with _autocast(device, precision):
            real = torch.cat([real_a, real_b]) if hp.nce_idt else real_a
            fake = net_g(real.flip(3) if flipped else real)
            fake_b = fake[:n]
            set_grad([net_d], True)
            opt_d.zero_grad()
            loss_d = 0.5 * (gan(net_d(fake_b.detach()), False) + gan(net_d(real_b), True))
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        set_grad([net_d], False)
        opt_g.zero_grad()
        opt_f.zero_grad()
        with _autocast(device, precision):
            loss_nce = nce(real_a, fake_b, flipped)
            if hp.nce_idt:
                loss_nce = 0.5 * (loss_nce + nce(real_b, fake[n:], flipped))
            loss_g = gan(net_d(fake_b), True) + loss_nce
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.step(opt_f)
        scaler.update()
        yield


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _measure(
    loop: str,
    method: str,
    size: int,
    ngf: int,
    device: str,
    precision: str,
    batch_size: int,
    warmup: int,
    iterations: int,
    queue,
) -> None:
    torch.manual_seed(0)
    if loop == "plain" and method in LIGHTNING_ONLY:
        raise ValueError(f"{method} has no plain loop here: measure it with --loops '[lightning]'")
    if loop == "plain":
        iterator = _plain_iterations(method, size, ngf, device, precision, batch_size, warmup + iterations)
        for _ in range(warmup):
            next(iterator)
        _sync(device)
        start = time.perf_counter()
        for _ in iterator:
            pass
        _sync(device)
        elapsed = time.perf_counter() - start
    else:
        import lightning.pytorch as pl
        from torch.utils.data import DataLoader

        marks: Dict[str, float] = {}

        class Clock(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if batch_idx == warmup:
                    _sync(device)
                    marks["start"] = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if batch_idx == warmup + iterations - 1:
                    _sync(device)
                    marks["end"] = time.perf_counter()

        module = _module(method, size, ngf, batched=loop.endswith("batched"))
        batch = _batch(method, size, batch_size)
        trainer = pl.Trainer(
            accelerator=device,
            devices=1,
            precision=precision,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            callbacks=[Clock()],
        )
        trainer.fit(module, DataLoader([batch] * (warmup + iterations), batch_size=None))
        elapsed = marks["end"] - marks["start"]
    queue.put((iterations / elapsed, peak_mib(device)))


def main(
    methods: List[Method] = ["cyclegan", "pix2pix"],
    sizes: List[int] = [64, 128],
    ngf: int = 64,
    device: Literal["cpu", "cuda"] = "cpu",
    precision: str = "32-true",
    batch_size: int = 1,
    warmup: int = 2,
    iterations: int = 5,
    repeats: int = 1,
    loops: List[Loop] = ["plain", "lightning", "lightning+batched"],
) -> List[Dict]:
    """Measure iterations/s and peak memory of each loop; print a markdown table.

    Args:
        methods: which models to measure; ``cut`` and ``fastcut`` are CUT with its published
            and its FastCUT options; ``dclgan`` is DCLGAN as published, ``dclgan_matmul`` with
            ``nce_pairwise="matmul"``; ``unsb`` UNSB with the published command's weights
            (``dclgan*`` and ``unsb`` have the ``lightning`` loops only).
        sizes: image sides in pixels (pix2pix uses unet_<size>).
        ngf: generator and discriminator width (64 is the published one).
        device: cpu or cuda.
        precision: Lightning precision string (32-true, bf16-mixed, 16-mixed); the plain loop
            uses the matching autocast (and a GradScaler for 16-mixed).
        batch_size: images per iteration (the published recipe uses 1).
        warmup: iterations run before timing starts.
        iterations: timed iterations.
        repeats: measurements of each loop (in turn); the best is reported.
        loops: which loops to time (the ratio column is relative to ``plain``).
    """
    rows = []
    print(
        f"device={device} precision={precision} ngf={ngf} batch={batch_size} "
        f"threads={torch.get_num_threads()} warmup={warmup} iterations={iterations} repeats={repeats}"
    )
    print("| model | size | loop | it/s | peak memory (MiB) | ratio to plain |")
    print("|---|---|---|---|---|---|")
    for method in methods:
        for size in sizes:
            best: Dict[str, tuple] = {}
            # The best rate of the repeats counts: other work on the machine only ever slows a
            # measurement down.
            for repeat in range(repeats):
                # Every other repeat runs the loops in reverse, so none always comes first.
                for loop in loops if repeat % 2 == 0 else loops[::-1]:
                    rate, memory = in_fresh_process(
                        _measure,
                        loop,
                        method=method,
                        size=size,
                        ngf=ngf,
                        device=device,
                        precision=precision,
                        batch_size=batch_size,
                        warmup=warmup,
                        iterations=iterations,
                    )
                    previous = best.get(loop, (0.0, 0.0))
                    best[loop] = (max(rate, previous[0]), max(memory, previous[1]))
            plain_rate = best.get("plain", (None,))[0]
            for loop in loops:
                rate, memory = best[loop]
                ratio = f"{rate / plain_rate:.3f}" if plain_rate else "-"
                rows.append(dict(model=method, size=size, loop=loop, it_s=rate, memory_mib=memory))
                print(f"| {method} | {size} | {loop} | {rate:.3f} | {memory:.0f} | {ratio} |", flush=True)
    return rows


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main, as_positional=False)
