"""Does the paper's NAE attack Φ repeat bit for bit in fresh processes? (issue 11)

    python scripts/probe_nae_determinism.py --runs 4

The learned RIC presets used to regenerate n_adv at decryption by re-running Φ; some runs of
`noiseveil encrypt` then decrypted the first images of the run to 10-35 dB. This probe runs Φ
(the shipped masked CIFAR-10 model's settings, 64 test images, fixed key and nonces) in fresh
processes under the conditions suspected of changing floating point, and compares every
image's n_adv with a reference process:

- thread count 1 and 2; the classifier called first (as encryption does) or Φ first (as
  decryption does); flush-to-zero of denormals; weights and inputs moved off their aligned
  addresses; another process loading both cores;
- and in one process, how far n_adv moves when one input sample changes by one ulp (the
  amplification a last-bit difference would get through Φ's 20 Adam steps).

Writes results/benchmark/nae-determinism.json. Decryption no longer depends on any of this
(the NAE is carried sealed in the ciphertext; the lossless preset has no NAE to regenerate).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result

MODEL = "ric-cifar10-masked"
N = 64

CHILD_TEMPLATE = r"""
import hashlib, json, sys, torch
import noiseveil as nv
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import to_tensor
mode = json.loads(sys.argv[1])
if mode.get("ftz"):
    torch.set_flush_denormal(True)
scheme = nv.load_scheme("%(model)s")
def misalign(t, off):
    buf = torch.empty(t.numel() + 16, dtype=t.dtype)
    v = buf[off:off + t.numel()].view_as(t); v.copy_(t); return v
if mode.get("misalign"):
    for m in scheme.classifier.modules():
        for name, p in list(m.named_parameters(recurse=False)):
            p.data = misalign(p.data, mode["misalign"])
x = to_tensor(nv.load_dataset("cifar10").x_test[:%(n)d])
key = SecretKey(bytes(range(32)))
nonces = [bytes([i]) * 16 for i in range(%(n)d)]
targets = torch.tensor(mode["targets"]) if "targets" in mode else None
if mode.get("classify_first") or targets is None:
    with torch.no_grad():
        targets = scheme.classifier(x).argmax(1)
noise = scheme.noise(key, nonces)
if mode.get("misalign"):
    noise = misalign(noise, mode["misalign"])
n_adv = scheme.nae_from_noise(noise, targets)
hashes = [hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in n_adv]
print(json.dumps({"targets": targets.tolist(), "hashes": hashes}))
"""
CHILD = CHILD_TEMPLATE.replace("%(model)s", MODEL).replace("%(n)d", str(N))


def child(mode: dict, threads: int, script: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, str(script), json.dumps(mode)], capture_output=True, text=True, env=env
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_ulp_amplification() -> float:
    """Largest |Δ n_adv| after changing one input sample of one image by one ulp."""
    import noiseveil as nv
    from noiseveil.crypto.keys import SecretKey

    scheme = nv.load_scheme(MODEL)
    key = SecretKey(bytes(range(32)))
    nonces = [bytes([i]) * 16 for i in range(16)]
    targets = torch.arange(16) % 10
    noise = scheme.noise(key, nonces)
    base = scheme.nae_from_noise(noise, targets)
    moved = noise.clone()
    moved[0, 0, 0, 0] = torch.nextafter(moved[0, 0, 0, 0], torch.tensor(2.0))
    return float((scheme.nae_from_noise(moved, targets) - base).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=4, help="fresh processes per condition")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        reference = child({"classify_first": True}, 2, script)
        targets = reference["targets"]
        conditions = {
            "2 threads, classifier first (encryption)": ({"classify_first": True}, 2),
            "1 thread, classifier first": ({"classify_first": True}, 1),
            "2 threads, Φ first (decryption)": ({"targets": targets}, 2),
            "1 thread, Φ first": ({"targets": targets}, 1),
            "flush denormals to zero": ({"classify_first": True, "ftz": True}, 2),
            "weights and noise misaligned by 1 float": ({"classify_first": True, "misalign": 1}, 2),
            "weights and noise misaligned by 3 floats": ({"classify_first": True, "misalign": 3}, 2),
        }
        results = {}
        for name, (mode, threads) in conditions.items():
            differing = []
            for _ in range(args.runs):
                got = child(mode, threads, script)["hashes"]
                differing.append(
                    [i for i, (a, b) in enumerate(zip(got, reference["hashes"], strict=True)) if a != b]
                )
            results[name] = {"runs": args.runs, "threads": threads, "images_differing_per_run": differing}
            print(f"{name}: {[len(d) for d in differing]} of {N} images differ", flush=True)
        hog = subprocess.Popen(
            [sys.executable, "-c", "import torch\na=torch.rand(1500,1500)\nwhile True: a@a"]
        )
        try:
            got = [child({"classify_first": True}, 2, script)["hashes"] for _ in range(args.runs)]
        finally:
            hog.kill()
        differing = [
            [i for i, (a, b) in enumerate(zip(g, reference["hashes"], strict=True)) if a != b] for g in got
        ]
        results["both cores loaded by another process"] = {
            "runs": args.runs,
            "threads": 2,
            "images_differing_per_run": differing,
        }
        print(f"loaded: {[len(d) for d in differing]} of {N} images differ", flush=True)
    amplification = one_ulp_amplification()
    print(f"one ulp in one input sample moves n_adv by at most {amplification:.3g}")
    digest = hashlib.sha256(json.dumps(reference["hashes"]).encode()).hexdigest()[:16]
    write_result(
        RESULTS_DIR / "benchmark" / "nae-determinism.json",
        {
            **provenance(["cifar10"], [MODEL]),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "images": N,
            "reference_digest": digest,
            "conditions": results,
            "one_ulp_max_abs_change_of_n_adv": amplification,
        },
    )


if __name__ == "__main__":
    main()
