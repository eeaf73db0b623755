"""The report commands run end to end on a tiny budget (real models, real data, real figures)."""

from __future__ import annotations

import json

import pytest
import torch

from noiseveil.reports import security
from noiseveil.schemes import shipped_schemes

torch.set_num_threads(1)

TINY = security.SecurityBudget(
    test_images=4,
    brute_force_images=2,
    brute_force_keys=3,
    one_bit_keys=2,
    kpa_pairs=8,
    itn_pairs=8,
    cloud_ciphertexts=8,
    network_steps=2,
    nes_images=1,
    nes_samples=2,
)


@pytest.mark.skipif("ric-cifar10" not in shipped_schemes(), reason="ric-cifar10 not shipped")
def test_security_report_on_a_tiny_budget(tmp_path) -> None:
    result = security.run(tmp_path, ["ric-cifar10"], TINY)
    m = result["models"]["ric-cifar10"]
    assert set(m["attacks"]) >= {"label-only", "brute-force", "kpa", "itn", "cloud", "kpa (other key)"}
    bf = m["brute_force"]
    assert len(bf["per_key_means"]["random keys"]) == 3 and len(bf["per_key_means"]["one-bit keys"]) == 2
    # the right key decrypts, guessed keys do not
    right = bf["summary"]["right key"]["psnr_db"]["mean"]
    assert right > 30.0 and bf["summary"]["random keys"]["psnr_db"]["max"] < right - 15.0
    saved = json.loads((tmp_path / "security-report.json").read_text())
    assert saved["budget"]["network_steps"] == 2 and saved["git_commit"]
    report = (tmp_path / "report.md").read_text()
    assert "ric-cifar10" in report and "label-only" in report
    for fig in ("attacks-ric-cifar10.png", "key-sweep-ric-cifar10.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
