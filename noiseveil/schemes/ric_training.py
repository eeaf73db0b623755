"""Training RIC's networks on a CPU: a keyed NAE pool instead of a C&W attack per batch.

The paper reruns a 100-step attack for every training batch. NAEs depend only on (key,
nonce, target class), so we generate a pool of them per class once, cache it on disk, and
pair each training image with a random pool NAE of its predicted class. Evaluation always
uses fresh NAEs from fresh nonces, so the pool cannot flatter the reported figures.

:meth:`noiseveil.schemes.ric.RICScheme.train` calls this module; this module names the scheme
only by what it reads of it (:class:`TrainableRIC`), so that the two do not import each other.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from noiseveil.checkpoint import TrainingState
from noiseveil.classifiers.training import augment_batch, predict
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import ImageDataset, cache_dir, to_tensor, to_uint8
from noiseveil.data.cache import save_arrays_atomic
from noiseveil.metrics import psnr
from noiseveil.progress import progress_bar
from noiseveil.schemes.nae import NAEConfig, margin_loss


class TrainableRIC(Protocol):
    """What training reads of a RIC scheme (:class:`~noiseveil.schemes.ric.RICScheme`): its
    networks (``model.cfg`` their settings), the cloud classifier, its NAEs and keyed pads."""

    model: nn.Module
    classifier: nn.Module
    nae: NAEConfig

    def nae_for(self, key: SecretKey, nonces: Sequence[bytes], targets: torch.Tensor) -> torch.Tensor: ...

    def pad(self, key: SecretKey, nonces: Sequence[bytes]) -> torch.Tensor | None: ...


@dataclass(frozen=True)
class RICTrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3  # the paper uses 1e-4 for 200 GPU epochs; a CPU budget needs larger steps
    pool_per_class: int = 100
    augment: str = "crop-flip"
    val_images: int = 64
    eval_every: int = 250
    seed: int = 0


# Training settings that go with each network preset of ``noiseveil.schemes.ric.PRESETS``:
# the paper trains with Adam at 1e-4 for 200 GPU epochs; a CPU budget needs larger steps.
# "masked" starts at the fidelity rounding allows, so it takes small steps: Adam's first
# updates move every weight by about lr, and at 1e-3 that costs the zero-initialised E and D
# more than a dB before they learn anything.
PRESET_LR = {"paper": 1e-4, "fast": 1e-3, "masked": 1e-4}


def _pool_key(seed: int) -> SecretKey:
    # Training NAEs are training data, not secrets: a fixed derivation makes the pool cacheable.
    return SecretKey(hashlib.sha256(f"noiseveil/ric-training-pool/{seed}".encode()).digest())


def _pool_nonce(label: int, i: int) -> bytes:
    return hashlib.sha256(f"pool/{label}/{i}".encode()).digest()[:16]


def pool_tag(classifier_id: str, scheme: TrainableRIC) -> str:
    """Names a cached NAE pool by everything that shapes its NAEs."""
    nae, cfg = scheme.nae, scheme.model.cfg
    if not cfg.adversarial_noise:
        return f"{classifier_id}-raw-noise"
    tag = f"{classifier_id}-{nae.steps}-{nae.lr}-{nae.margin}"
    return tag + (f"-blend{nae.blend_draws}x{cfg.lam}" if nae.blend_draws else "")


def build_nae_pool(
    scheme: TrainableRIC, num_classes: int, per_class: int, seed: int, cache_tag: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` NAEs targeting each class, cached on disk (float32) under ``cache_tag``."""
    path = cache_dir() / "nae-pools" / f"{cache_tag}-{per_class}-{seed}.npz"
    if path.exists():
        with np.load(path) as z:
            return torch.from_numpy(z["naes"]), torch.from_numpy(z["labels"])
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    nonces = [_pool_nonce(int(c), i % per_class) for i, c in enumerate(labels)]
    key = _pool_key(seed)
    naes = []
    for start in progress_bar(range(0, len(labels), 128), desc="NAE pool"):
        naes.append(scheme.nae_for(key, nonces[start : start + 128], labels[start : start + 128]))
    naes = torch.cat(naes)
    hits = (predict(scheme.classifier, naes) == labels).float().mean().item()
    print(f"NAE pool: {len(naes)} NAEs, {hits:.1%} classified as their target", flush=True)
    # Atomic: other processes (parallel test workers, a second training) may share the cache.
    save_arrays_atomic(path, {"naes": naes.numpy(), "labels": labels.numpy()})
    return naes, labels


def classifier_labels(classifier: nn.Module, pixels: np.ndarray, images: torch.Tensor) -> torch.Tensor:
    """The classifier's labels of ``images`` (a training set: tens of thousands), cached on disk
    under the digests of the classifier's weights and of the images' ``pixels`` (uint8): a
    short training (a report's ablation, a resumed run) would otherwise spend most of its time
    classifying them again."""
    from noiseveil.checksums import state_digest

    content = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    name = hashlib.sha256(f"{state_digest(classifier)}/{content}/{pixels.shape}".encode()).hexdigest()
    path = cache_dir() / "classifier-labels" / f"{name[:32]}.npz"
    if path.exists():
        with np.load(path) as z:
            return torch.from_numpy(z["labels"])
    labels = predict(classifier, images)
    save_arrays_atomic(path, {"labels": labels.numpy()})  # atomic: test workers share the cache
    return labels


def fresh_val_naes(
    scheme: TrainableRIC, x: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """NAEs (and keyed pads, if the model uses them) for validation images, from nonces never
    used in the pool."""
    targets = predict(scheme.classifier, x)
    key = _pool_key(seed + 1)
    nonces = [hashlib.sha256(f"val/{i}".encode()).digest()[:16] for i in range(len(x))]
    return scheme.nae_for(key, nonces, targets), scheme.pad(key, nonces)


def random_pad(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Uniform [0, 1) of the shape of ``like``: training sees every pad, as keys give."""
    return torch.rand(like.shape, generator=gen)


def training_step(
    model: nn.Module,
    classifier: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    n_adv: torch.Tensor,
    pad: torch.Tensor | None,
    target: torch.Tensor,
) -> torch.Tensor:
    """One update of F, E, D on β·L_rec + L_adv (eq. 11-13); returns the loss."""
    cfg = model.cfg
    x_q, x_rec = model(x, n_adv, pad)
    rec = (x - x_rec).flatten(1).norm(dim=1).mean()  # L_rec = ‖x − x̃‖₂ (eq. 12)
    adv = margin_loss(classifier(x_q), target, cfg.g2).mean()  # L_adv (eq. 13)
    loss = cfg.beta * rec + adv
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def fit_ric(
    scheme: TrainableRIC,
    data: ImageDataset,
    cfg: RICTrainConfig,
    checkpoint: Path | None = None,
    cache_tag: str = "pool",
) -> dict:
    """Train F, E, D with β·L_rec + L_adv (eq. 11-13); resumable from ``checkpoint``."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model, classifier, ric_cfg = scheme.model, scheme.classifier, scheme.model.cfg
    x_train = to_tensor(data.x_train)
    y_hat = classifier_labels(classifier, data.x_train, x_train)  # NAE targets (eq. 3)
    naes, pool_labels = build_nae_pool(scheme, data.num_classes, cfg.pool_per_class, cfg.seed, cache_tag)
    by_class = [torch.nonzero(pool_labels == c)[:, 0] for c in range(data.num_classes)]
    val_idx = torch.from_numpy(np.linspace(0, len(data.x_test) - 1, cfg.val_images).astype(int))
    x_val = to_tensor(data.x_test)[val_idx]
    n_val, pad_val = fresh_val_naes(scheme, x_val, cfg.seed)
    y_val = predict(classifier, x_val)

    # channels-last: see scripts/benchmark_ric_step.py for its measured effect per preset
    model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
    )
    training = TrainingState(model, opt, sched, gen)
    state = training.resume(checkpoint, {"step": 0, "seconds": 0.0, "curve": []})

    def evaluate() -> dict:
        model.eval()
        with torch.no_grad():
            x_q, x_rec = model(x_val, n_val, pad_val)
        agree = (predict(classifier, x_q) == y_val).float().mean().item()
        quality = psnr(to_uint8(x_rec), to_uint8(x_val))
        model.train()
        return {
            "step": state["step"],
            "seconds": round(state["seconds"], 1),
            "val_psnr": float(quality.mean()),
            "val_label_agreement": agree,
        }

    if not state["curve"]:  # the learning curve starts at the untrained model
        state["curve"].append(evaluate())
    model.train()
    bar = progress_bar(total=cfg.steps, initial=state["step"], desc="RIC")
    tick = time.time()
    while state["step"] < cfg.steps:
        idx = torch.randint(0, len(x_train), (cfg.batch_size,), generator=gen)
        x = augment_batch(x_train[idx], cfg.augment, gen).contiguous(memory_format=torch.channels_last)
        target = y_hat[idx]
        pick = torch.stack(
            [
                by_class[int(t)][torch.randint(0, len(by_class[int(t)]), (1,), generator=gen)][0]
                for t in target
            ]
        )
        n_adv = naes[pick].contiguous(memory_format=torch.channels_last)
        pad = (
            random_pad(n_adv, gen).contiguous(memory_format=torch.channels_last)
            if ric_cfg.keyed_pad
            else None
        )
        loss = training_step(model, classifier, opt, x, n_adv, pad, target)
        sched.step()
        state["step"] += 1
        bar.update(1)
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
            state["seconds"] += time.time() - tick
            point = evaluate()
            state["curve"].append(point)
            bar.write(
                f"step {point['step']}: val PSNR {point['val_psnr']:.2f} dB, label agreement "
                f"{point['val_label_agreement']:.3f}, loss {loss.item():.4f} "
                f"({point['seconds']:.0f}s)"
            )
            training.save(checkpoint, state)
            tick = time.time()
    bar.close()
    model.eval().to(memory_format=torch.contiguous_format)  # shipped weights: the default layout
    for p in model.parameters():
        p.requires_grad_(False)
    return {"config": asdict(cfg), "curve": state["curve"], "train_seconds": state["seconds"]}
