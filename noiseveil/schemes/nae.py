"""Noise-like adversarial examples (NAE), RIC eq. 1-4.

    n      = PRNG(k, nonce)                   keyed uniform noise in [0,1]^d   (eq. 1)
    Δ      = Φ(n): Adam on the margin loss    max(max_{i≠ŷ} C(n+Δ)_i − C(n+Δ)_ŷ, −g1)  (eq. 3)
    n_adv  = clip(n + Δ, 0, 1)                                                  (eq. 2)

Format-1 ciphertexts were decrypted by regenerating n_adv, which needs Φ to repeat bit for
bit in another process; it did not always (issue 11), so format 2 carries n_adv sealed in the
ciphertext and Φ runs at encryption only. Φ still runs on chunks of exactly ``chunk`` images
(padding the last), with a fixed step count and deterministic kernels, so that format-1 files
decrypt as they always did.

Beyond the paper, ``blend_draws`` > 0 makes Φ attack what the cloud will see rather than n
alone: the mean margin over C(λ·(n + Δ) + (1 − λ)·r_j) for fixed uniform draws r_j, the
distribution of a keyed-pad ciphertext's image share (expectation over transformation). It
matters for classifiers that uniform noise of share 1 − λ knocks off a plain NAE (MNIST's).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Hashable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn


@dataclass(frozen=True)
class NAEConfig:
    steps: int = 20  # fixed: no early stopping, so every run takes the same path
    lr: float = 0.1  # Adam step in pixel units; 0.02 left 56% of MNIST NAEs short of their target
    margin: float = 5.0  # g1, the adversarial extent in logits
    chunk: int = 16  # images per Φ call (never 1: see module docstring)
    blend_draws: int = 0  # 0: attack n alone (the paper); J > 0: attack the blend (see above)

    def as_fields(self) -> dict[str, str]:
        fields = {"nae_steps": str(self.steps), "nae_lr": repr(self.lr), "nae_g1": repr(self.margin)}
        if self.blend_draws:
            fields["nae_draws"] = str(self.blend_draws)
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str], chunk: int = 16) -> NAEConfig:
        return cls(
            steps=int(fields["nae_steps"]),
            lr=float(fields["nae_lr"]),
            margin=float(fields["nae_g1"]),
            chunk=chunk,
            blend_draws=int(fields.get("nae_draws", 0)),
        )


def logit_margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample z_t − max_{i≠t} z_i: positive where the target wins, by how much."""
    target_logit = logits.gather(1, target[:, None])[:, 0]
    others = logits.masked_fill(nn.functional.one_hot(target, logits.shape[1]).bool(), float("-inf"))
    return target_logit - others.max(1).values


def margin_loss(logits: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-sample C&W margin loss max(max_{i≠t} z_i − z_t, −margin) (RIC eq. 3 and 13)."""
    return torch.clamp(-logit_margin(logits, target), min=-margin)


@contextmanager
def deterministic():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def blend_draws(cfg: NAEConfig, shape: torch.Size) -> torch.Tensor:
    """The fixed uniform draws r_j of the blend attack: public, the same in every process."""
    return torch.rand((cfg.blend_draws, *shape), generator=torch.Generator().manual_seed(0))


def _attack_chunk(
    classifier: nn.Module, noise: torch.Tensor, target: torch.Tensor, cfg: NAEConfig, lam: float
) -> torch.Tensor:
    adv = noise.clone().requires_grad_(True)
    opt = torch.optim.Adam([adv], lr=cfg.lr)
    draws = blend_draws(cfg, noise.shape[1:])
    for _ in range(cfg.steps):
        if cfg.blend_draws:
            seen = torch.cat([lam * adv + (1.0 - lam) * r for r in draws])
            loss = margin_loss(classifier(seen), target.repeat(len(draws)), cfg.margin).sum() / len(draws)
        else:
            loss = margin_loss(classifier(adv), target, cfg.margin).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            adv.clamp_(0.0, 1.0)  # box constraint n + Δ ∈ [0,1]^d
    return adv.detach()


def generate_nae(
    classifier: nn.Module,
    noise: torch.Tensor,
    target: torch.Tensor,
    cfg: NAEConfig = NAEConfig(),
    lam: float = 1.0,
) -> torch.Tensor:
    """Targeted margin attack on ``noise`` (N, C, H, W) so that ``classifier`` predicts ``target``;
    with ``cfg.blend_draws``, on its blend of share ``lam`` with uniform draws."""
    classifier.eval()
    out = []
    with deterministic(), torch.enable_grad():
        for start in range(0, len(noise), cfg.chunk):
            n, t = noise[start : start + cfg.chunk], target[start : start + cfg.chunk]
            real = len(n)
            if real < cfg.chunk:  # pad to the fixed chunk shape, then drop the padding
                reps = -(-cfg.chunk // real)
                n, t = n.repeat(reps, 1, 1, 1)[: cfg.chunk], t.repeat(reps)[: cfg.chunk]
            out.append(_attack_chunk(classifier, n, t, cfg, lam)[:real])
    return torch.cat(out)


# -- discrete NAE (RIC's lossless preset) ---------------------------------------------------
@dataclass(frozen=True)
class DiscreteNAEConfig:
    """Φ for ciphertexts L·a + d: integer high parts a, attacked with straight-through rounding.

    Decryption never regenerates a, so Φ may stop each image as soon as it succeeds and need
    not be reproducible; ``accept_margin`` (logits) keeps the verdict safe from the last-bit
    differences another batch size or thread count gives the cloud's forward pass.
    """

    steps: int = 50  # at most; each image stops as soon as it is accepted
    lr: float = 0.25  # Adam step in units of one level of a
    margin: float = 10.0  # g1: the loss stops pushing past this logit margin
    accept_margin: float = 1.0  # an image is done when z_ŷ − max_{i≠ŷ} z_i ≥ this on the rounded pixels
    # start each image from high parts that brought an earlier image of its label home (see
    # WarmStarts): most images are then accepted on the first forward pass
    warm_start: bool = True


class DiscreteNAE(NamedTuple):
    high: torch.Tensor  # a, uint8 (N, C, H, W)
    kept: torch.Tensor  # bool (N,): C gives the target with at least the accept margin
    margin: torch.Tensor  # (N,) z_ŷ − max_{i≠ŷ} z_i where kept, else NaN


class _StraightThroughRound(torch.autograd.Function):
    """round(z) forward, the identity backward: one tensor per step, where the usual
    ``z + (round(z) − z).detach()`` makes three (they add up on a 12-megapixel photo)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:  # noqa: ARG004 (autograd's signature)
        return torch.round(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return grad


def discrete_nae(
    classifier: nn.Module,
    digits: torch.Tensor,
    target: torch.Tensor,
    start: torch.Tensor,
    modulus: int,
    cfg: DiscreteNAEConfig = DiscreteNAEConfig(),
    stats: Counter | None = None,
) -> DiscreteNAE:
    """High parts a (uint8, same shape as ``digits``) with C((L·a + d)/255) = target, which
    succeeded, and the logit margin each accepted image was accepted at.

    ``digits`` d are the fixed low parts (uint8 in [0, L)); ``start`` in [0, 1) is the keyed
    random start, scaled to a's range [0, 256/L − 1]. Every step evaluates the exact rounded
    ciphertext, so an accepted image is classified as ``target`` by construction. ``stats``
    counts the images the classifier evaluated (``attack_passes``: one per image and pass; the
    start is evaluated once without autograd, then once more with it where it failed).
    """
    classifier.eval()
    top = 256 // modulus - 1
    low = digits.float()  # d, the fixed part of every pixel
    z = start.mul(top)
    best = torch.round(z).to(torch.uint8)
    kept = torch.zeros(len(best), dtype=torch.bool)
    margin = torch.full((len(best),), float("nan"))

    def evaluate(rounded: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """The logit margins of the rounded high parts of the images ``active`` (counted)."""
        fixed = low if len(active) == len(low) else low[active]
        # (L·a + d) / 255 computed as the cloud computes it from the 8-bit file: L·a + d is
        # an exact integer in float32, so the division rounds as the cloud's does
        pixels = torch.addcmul(fixed, rounded, torch.tensor(float(modulus))).div_(255.0)
        # channels-last: the convolutions' forward and backward run about a sixth faster on CPU
        # (scripts/benchmark_lossless.py); the verdict rests on accept_margin, not on the last
        # bits, and the self-check classifies the written file as the cloud does
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        if stats is not None:
            stats["attack_passes"] += len(active)
        return logit_margin(classifier(pixels), target[active])

    def accept(margins: torch.Tensor, rounded: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        done = margins >= cfg.accept_margin
        best[active[done]] = rounded[done].to(torch.uint8)
        kept[active[done]] = True
        margin[active[done]] = margins[done]
        return done

    # The start is evaluated without autograd first: a warm-started image is mostly accepted
    # there, and a pass that records no graph and needs no backward costs a fraction of one
    # that does (the backward of a batch costs the same however few of its images are left).
    active = torch.arange(len(best))
    with torch.no_grad():
        done = accept(evaluate(best.float(), active), best, active)
    active = active[~done]
    if len(active) == 0:
        return DiscreteNAE(best, kept, margin)
    z = z[active].requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    with torch.enable_grad():
        for step in range(cfg.steps + 1):
            rounded = _StraightThroughRound.apply(z)
            margins = evaluate(rounded, active)
            done = accept(margins.detach(), rounded.detach(), active)
            if done.all() or step == cfg.steps:  # the last rounded pixels are evaluated, not moved
                break
            opt.zero_grad(set_to_none=True)
            torch.clamp(-margins, min=-cfg.margin).sum().backward()  # the margin loss (eq. 3)
            del rounded
            opt.step()
            with torch.no_grad():
                z.clamp_(0.0, float(top))
            if done.any():  # carry on with the rest only: a smaller batch costs fewer FLOPs
                z, opt = _keep_rows(z, opt, ~done, cfg.lr)
                active = active[~done]
    left = ~kept[active]  # z holds one row per image in ``active``: those it did not bring home
    best[active[left]] = torch.round(z.detach()[left]).to(torch.uint8)
    return DiscreteNAE(best, kept, margin)


@dataclass
class WarmStarts:
    """High parts a that brought an image of each label home, to start the next one from.

    The digits d are AEAD output, uniform whatever the image, so an a that makes C give label
    ŷ to L·a + d by a wide margin for one draw of d mostly does so for the next: started there,
    most images are accepted on the first forward pass (scripts/benchmark_lossless.py counts
    the passes). Each label keeps the a accepted at the widest margin so far: the first one
    accepted is often just past the accept margin and carries over to other digits less often.

    a still depends on nothing but digits, labels and the keyed starts, never on an image's
    pixels. What it adds: ciphertexts of one label under one key often share their high parts,
    so whoever holds two can tell whether their labels are equal, which the cloud learns anyway
    (``DiscreteNAEConfig(warm_start=False)`` turns it off). Kept per ``scope`` (key and shape)
    and label, within ``max_samples`` samples (bytes) in all, the oldest dropped first: tens of
    thousands of 32x32 labels, a few hundred at 224x224; a 12-megapixel photo's 36 M samples
    are not kept (photos of one size and label are rare in a folder).
    """

    max_samples: int = 1 << 25
    _kept: OrderedDict[tuple[Hashable, int], tuple[float, torch.Tensor]] = field(default_factory=OrderedDict)
    _samples: int = 0  # held in _kept
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def starts(self, scope: Hashable, targets: torch.Tensor, start: torch.Tensor, top: int) -> torch.Tensor:
        """``start`` (in [0, 1], scaled by ``top``) with each image whose label has kept high
        parts started from them instead."""
        out = start
        with self._lock:
            for i, label in enumerate(targets.tolist()):
                if (found := self._kept.get((scope, label))) is not None:
                    out = out.clone() if out is start else out
                    out[i] = found[1].float().div_(top)
        return out

    def remember(self, scope: Hashable, targets: torch.Tensor, attack: DiscreteNAE) -> None:
        """Keep, per label, the accepted high parts of the widest margin seen."""
        if attack.high[0].numel() > self.max_samples:  # could not be kept: copy nothing
            return
        with self._lock:
            for i in torch.nonzero(attack.kept).flatten().tolist():
                slot, margin = (scope, int(targets[i])), float(attack.margin[i])
                if slot not in self._kept or margin > self._kept[slot][0]:
                    self._drop(slot)
                    self._kept[slot] = (margin, attack.high[i].clone())
                    self._samples += attack.high[i].numel()
            while self._samples > self.max_samples:
                self._drop(next(iter(self._kept)))

    def _drop(self, slot: tuple[Hashable, int]) -> None:
        if (found := self._kept.pop(slot, None)) is not None:
            self._samples -= found[1].numel()


def _keep_rows(
    z: torch.Tensor, opt: torch.optim.Adam, rows: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.optim.Adam]:
    """The Adam variable and state restricted to ``rows`` (images still being attacked)."""
    state = opt.state[z]
    z = z.detach()[rows].clone().requires_grad_(True)
    new = torch.optim.Adam([z], lr=lr)
    new.state[z] = {
        "step": state["step"].clone(),
        "exp_avg": state["exp_avg"][rows].clone(),
        "exp_avg_sq": state["exp_avg_sq"][rows].clone(),
    }
    return z, new
