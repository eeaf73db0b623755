"""The user's side of the protocol: training h_θ on plaintexts that never leave the user.

Each step (Fig. 3, eq. 3-6)::

    x ──h_θ──▶ x̂ ──LossRequest(x̂, y)──▶ cloud: L_class(ψ(x̂), y), g = ∂L_class/∂x̂
                                    ◀──LossReply(L_class, g)──
    ∂L_trans/∂θ = gᵀ·∂x̂/∂θ − α·∂L_feat(x, x̂)/∂θ       (chain rule through x̂; L_feat is local)

so the user back-propagates ``(x̂·g).sum() − α·L_feat`` through h_θ alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from noiseveil.checkpoint import TrainingState
from noiseveil.classifiers.training import augment_batch
from noiseveil.data import to_tensor
from noiseveil.progress import progress_bar
from noiseveil.protocol.messages import MAX_BATCH, ClassifyRequest, LossRequest
from noiseveil.protocol.transport import Transport


@dataclass(frozen=True)
class TransformTraining:
    """How h_θ is trained (the paper: SGD, 200 epochs of 45,000 images, batch 128)."""

    alpha: float = 0.005  # the weight of L_feat in eq. 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3  # Adam, cosine schedule
    augment: str = "crop-flip"
    seed: int = 0


def feature_loss(phi: nn.Module, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L_feat (eq. 6): ‖φ(x̂) − φ(x)‖² / (C·H·W), averaged over the batch."""
    with torch.no_grad():
        target = phi(x)
    return (phi(x_hat) - target).pow(2).mean()


def train_transform(
    net: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    transport: Transport,
    phi: nn.Module,
    cfg: TransformTraining,
    checkpoint: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``net`` (h_θ) on uint8 images (N, H, W, C) through ``transport``; resumes from
    ``checkpoint`` (``stop_after`` steps: stop there, checkpointed, as a session end would).
    Returns the training report (losses as the cloud reported them)."""
    torch.manual_seed(cfg.seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, cfg.steps)
    order = torch.Generator().manual_seed(cfg.seed)
    state = TrainingState(net, optimiser, schedule, order)
    done = state.resume(checkpoint, {"step": 0, "history": [], "seconds": 0.0})
    history: list[dict[str, float]] = done["history"]
    x_all, y_all = to_tensor(images), torch.from_numpy(np.asarray(labels, dtype=np.int64))
    start = time.perf_counter() - done["seconds"]
    bar = progress_bar(total=cfg.steps, initial=done["step"], desc=f"h_θ α={cfg.alpha}", disable=not progress)
    net.train()
    window: list[tuple[float, float, int]] = []
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    for step in range(done["step"], end):
        idx = torch.randint(len(x_all), (cfg.batch_size,), generator=order)
        x = augment_batch(x_all[idx], cfg.augment, order)
        x_hat = net(x)
        reply = transport.class_loss(LossRequest(protected=x_hat.detach().numpy(), labels=y_all[idx].numpy()))
        l_feat = feature_loss(phi, x, x_hat)
        surrogate = (x_hat * torch.from_numpy(reply.grad)).sum() - cfg.alpha * l_feat
        optimiser.zero_grad(set_to_none=True)
        surrogate.backward()
        optimiser.step()
        schedule.step()
        window.append((float(reply.loss), l_feat.item(), int(reply.correct)))
        bar.update(1)
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            l_class, l_f, correct = (float(np.mean(v)) for v in zip(*window, strict=True))
            history.append(
                {
                    "step": step + 1,
                    "l_class": l_class,
                    "l_feat": l_f,
                    "train_accuracy": correct / cfg.batch_size,
                }
            )
            bar.set_postfix(l_class=f"{l_class:.3f}", l_feat=f"{l_f:.3g}")
            window = []
        if (step + 1) % 100 == 0 or step + 1 == end:
            progress_record = {"step": step + 1, "history": history, "seconds": time.perf_counter() - start}
            state.save(checkpoint, progress_record)
    bar.close()
    net.eval()
    return {"steps": cfg.steps, "history": history, "train_seconds": time.perf_counter() - start}


def cloud_accuracy(transport: Transport, protected: np.ndarray, labels: np.ndarray) -> float:
    """How often the cloud's ψ labels uint8 protected images (N, H, W, C) as ``labels``: the
    user asks the cloud (ClassifyRequest) and compares with labels it keeps to itself."""
    x = to_tensor(protected).numpy()
    predicted = np.concatenate(
        [
            transport.classify(ClassifyRequest(protected=x[i : i + MAX_BATCH])).labels
            for i in range(0, len(x), MAX_BATCH)
        ]
    )
    return float((predicted == np.asarray(labels)).mean())
