"""Noise-like adversarial examples: the loss, the box constraint and bit-exact reproducibility.

Decryption regenerates the NAE, so ``generate_nae`` must give bit-identical output whatever
the batch, thread count or process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_ric

from noiseveil.crypto.keys import SecretKey, keyed_uniform
from noiseveil.schemes.nae import NAEConfig, deterministic, generate_nae, margin_loss

TESTS_DIR = Path(__file__).resolve().parent
CFG = NAEConfig(steps=3)


def seeded_noise(n: int = 5) -> torch.Tensor:
    """Keyed noise exactly as a scheme makes it (fixed key, nonces 0..n-1)."""
    key = SecretKey(bytes(range(32)))
    return torch.stack(
        [torch.from_numpy(keyed_uniform(key, bytes([i]) * 16, "ric/noise", (1, 28, 28))) for i in range(n)]
    )


TARGETS = torch.tensor([3, 1, 4, 1, 5])


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    return make_tiny_ric().classifier  # the cloud classifier of the tiny_ric fixture


@pytest.fixture(scope="module")
def reference(classifier: torch.nn.Module) -> torch.Tensor:
    return generate_nae(classifier, seeded_noise(), TARGETS, CFG)


# --- the loss ------------------------------------------------------------------------------------


def test_margin_loss_hand_computed() -> None:
    logits = torch.tensor(
        [
            [1.0, 3.0, 2.0],  # t=0: max(3, 2) - 1 = 2
            [5.0, 0.0, -10.0],  # t=0: max(0, -10) - 5 = -5 -> clamped to -1.5
            [1.0, 3.0, 2.0],  # t=2: 3 - 2 = 1
            [0.0, 0.0, 0.0],  # t=1: 0 - 0 = 0 (ties)
            [-2.0, 4.0, 3.0],  # t=1: 3 - 4 = -1 (inside the margin, not clamped)
        ]
    )
    target = torch.tensor([0, 0, 2, 1, 1])
    loss = margin_loss(logits, target, margin=1.5)
    assert loss.shape == (5,)
    assert torch.equal(loss, torch.tensor([2.0, -1.5, 1.0, 0.0, -1.0]))


def test_margin_loss_clamps_at_minus_margin() -> None:
    logits = torch.tensor([[100.0, 0.0, 1.0]])
    assert margin_loss(logits, torch.tensor([0]), margin=5.0).item() == -5.0
    assert margin_loss(logits, torch.tensor([0]), margin=200.0).item() == -99.0
    assert margin_loss(logits, torch.tensor([1]), margin=5.0).item() == 100.0


def test_margin_loss_gradient_only_through_target_and_runner_up() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5]], requires_grad=True)
    margin_loss(logits, torch.tensor([0]), margin=5.0).sum().backward()
    assert torch.equal(logits.grad, torch.tensor([[-1.0, 1.0, 0.0, 0.0]]))


def test_nae_fields_round_trip() -> None:
    cfg = NAEConfig(steps=7, lr=0.013, margin=2.5)
    assert cfg.as_fields() == {"nae_steps": "7", "nae_lr": "0.013", "nae_g1": "2.5"}
    assert NAEConfig.from_fields(cfg.as_fields()) == cfg


def test_deterministic_context_restores_flag() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


# --- the attack ----------------------------------------------------------------------------------


def test_output_in_box_and_changed(classifier: torch.nn.Module, reference: torch.Tensor) -> None:
    noise = seeded_noise()
    assert reference.shape == noise.shape == (5, 1, 28, 28)
    assert reference.dtype == torch.float32
    assert not reference.requires_grad
    assert reference.min() >= 0.0 and reference.max() <= 1.0
    assert not torch.equal(reference, noise)  # the attack moved the noise
    # Adam moves each pixel by at most about lr per step
    assert (reference - noise).abs().max() <= CFG.steps * CFG.lr * 1.01


def test_attack_reduces_the_loss(classifier: torch.nn.Module) -> None:
    noise = seeded_noise()
    cfg = NAEConfig(steps=10, lr=0.05)
    adv = generate_nae(classifier, noise, TARGETS, cfg)
    with torch.no_grad():
        before = margin_loss(classifier(noise), TARGETS, cfg.margin)
        after = margin_loss(classifier(adv), TARGETS, cfg.margin)
    assert (after <= before).all()
    assert after.sum() < before.sum()


def test_box_constraint_holds_at_the_edges(classifier: torch.nn.Module) -> None:
    noise = torch.cat([torch.zeros(2, 1, 28, 28), torch.ones(2, 1, 28, 28)])
    adv = generate_nae(classifier, noise, torch.tensor([1, 2, 3, 4]), NAEConfig(steps=3, lr=0.5))
    assert adv.min() >= 0.0 and adv.max() <= 1.0


def test_same_input_twice_is_bit_identical(classifier: torch.nn.Module, reference: torch.Tensor) -> None:
    assert torch.equal(generate_nae(classifier, seeded_noise(), TARGETS, CFG), reference)


def test_batch_of_five_equals_one_at_a_time(classifier: torch.nn.Module, reference: torch.Tensor) -> None:
    noise = seeded_noise()
    singles = [generate_nae(classifier, noise[i : i + 1], TARGETS[i : i + 1], CFG) for i in range(5)]
    for i, single in enumerate(singles):
        assert single.shape == (1, 1, 28, 28)
        assert torch.equal(single[0], reference[i]), f"image {i} differs when encrypted alone"


def test_more_than_one_chunk(classifier: torch.nn.Module) -> None:
    # 5 images with chunk 2: chunks of 2, 2 and a padded 1, same results as chunk 16
    cfg = NAEConfig(steps=3, chunk=2)
    noise = seeded_noise()
    out = generate_nae(classifier, noise, TARGETS, cfg)
    assert out.shape == noise.shape
    assert torch.equal(out[4], generate_nae(classifier, noise[4:], TARGETS[4:], cfg)[0])


def test_thread_count_does_not_matter(classifier: torch.nn.Module, reference: torch.Tensor) -> None:
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = generate_nae(classifier, seeded_noise(), TARGETS, CFG)
        torch.set_num_threads(2)
        two = generate_nae(classifier, seeded_noise(), TARGETS, CFG)
    finally:
        torch.set_num_threads(previous)
    assert torch.get_num_threads() == previous
    assert torch.equal(one, two)
    assert torch.equal(one, reference)


def test_other_process_and_thread_count(tmp_path: Path, reference: torch.Tensor) -> None:
    threads = 2 if torch.get_num_threads() != 2 else 1
    out = tmp_path / "nae.pt"
    script = textwrap.dedent(
        f"""
        import sys
        import torch
        torch.set_num_threads({threads})
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from conftest import make_tiny_ric
        from test_nae import CFG, TARGETS, seeded_noise
        from noiseveil.schemes.nae import generate_nae

        assert torch.get_num_threads() == {threads}
        adv = generate_nae(make_tiny_ric().classifier, seeded_noise(), TARGETS, CFG)
        torch.save(adv, {str(out)!r})
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert torch.equal(torch.load(out), reference)


def test_classifier_weights_matter(reference: torch.Tensor) -> None:
    # Guards the comparisons above: another classifier gives another NAE.
    other = generate_nae(make_tiny_ric(seed=1).classifier, seeded_noise(), TARGETS, CFG)
    assert not torch.equal(other, reference)


def test_blend_attack_survives_the_pad_better_than_a_plain_nae() -> None:
    """MNIST's CNN: NAEs made against the blend keep their label under fresh uniform shares."""
    from noiseveil.data import load_dataset, to_tensor
    from noiseveil.zoo import load_classifier

    classifier = load_classifier("mnist-cnn")
    x = to_tensor(load_dataset("mnist").x_test[:48])
    target = classifier(x).argmax(1)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    fresh = torch.rand(x.shape, generator=torch.Generator().manual_seed(4))
    plain_cfg = NAEConfig(steps=20, lr=0.1, margin=15.0)
    blend_cfg = replace(plain_cfg, blend_draws=4)
    assert NAEConfig.from_fields(blend_cfg.as_fields()) == blend_cfg
    assert NAEConfig.from_fields(plain_cfg.as_fields()) == plain_cfg  # old headers still parse

    def kept(cfg: NAEConfig) -> float:
        n_adv = generate_nae(classifier, noise, target, cfg, lam=0.8)
        return (classifier(0.8 * n_adv + 0.2 * fresh).argmax(1) == target).float().mean().item()

    assert kept(blend_cfg) > kept(plain_cfg)


@pytest.mark.parametrize(("seed", "steps"), [(2, 2), (13, 2), (23, 1), (5, 3)])
def test_discrete_nae_ends_whichever_images_the_last_step_brings_home(classifier, seed, steps) -> None:
    """Every image ends with its high parts, whether it succeeded early, at the very last
    evaluation (the first three cases: some, not all, succeed there, which once raised an
    IndexError) or not at all; a kept one is the target's."""
    from noiseveil.schemes.nae import DiscreteNAEConfig, discrete_nae

    n, modulus = 16, 4
    generator = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, modulus, (n, 1, 16, 16), generator=generator, dtype=torch.uint8)
    start = torch.rand((n, 1, 16, 16), generator=generator)
    targets = torch.arange(n) % 10
    cfg = DiscreteNAEConfig(steps=steps, accept_margin=0.1)
    high, kept, margin = discrete_nae(classifier, digits, targets, start, modulus, cfg)
    assert high.shape == digits.shape and high.dtype == torch.uint8 and int(high.max()) < 256 // modulus
    with torch.no_grad():
        logits = classifier((high.float() * modulus + digits.float()) / 255)
    assert torch.equal(logits.argmax(1)[kept], targets[kept])
    assert bool((margin[kept] >= cfg.accept_margin).all()) and bool(margin[~kept].isnan().all())
    others = logits[kept].scatter(1, targets[kept][:, None], float("-inf")).max(1).values
    measured = logits[kept].gather(1, targets[kept][:, None])[:, 0] - others
    assert torch.allclose(margin[kept], measured, atol=1e-3)
