"""TransNet as a scheme: trained through the protocol, keyless, not recoverable, in the container."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from noiseveil.crypto.keys import NoKey
from noiseveil.data import ImageDataset, load_dataset, to_tensor, to_uint8
from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes
from noiseveil.protocol import CloudService, InProcessTransport
from noiseveil.protocol.user import TransformTraining
from noiseveil.schemes.base import SchemeError
from noiseveil.schemes.transnet import TransformConfig, TransNetScheme, train_scheme
from noiseveil.zoo import load_classifier

PSI = "cifar10-resnet"


@pytest.fixture(scope="module")
def trained() -> tuple[TransNetScheme, ImageDataset]:
    data = load_dataset("cifar10")
    small = dataclasses.replace(data, x_train=data.x_train[:64], y_train=data.y_train[:64])
    cloud = CloudService(load_classifier(PSI), (32, 32, 3), 10)
    scheme, report = train_scheme(
        "transnet-test",
        (32, 32, 3),
        PSI,
        TransformConfig(widths=(4, 8)),
        TransformTraining(alpha=0.01, steps=3, batch_size=8),
        small,
        InProcessTransport(cloud),
        progress=False,
    )
    assert report["steps"] == 3 and len(report["history"]) == 1 and report["parameters"] > 0
    return scheme, data


def test_the_user_side_does_not_hold_the_cloud_model(trained) -> None:
    scheme, _ = trained
    with pytest.raises(SchemeError, match="does not hold the cloud's classifier cifar10-resnet"):
        scheme.cloud_classifier()


def test_protected_images_are_keyless_and_not_recoverable(trained) -> None:
    scheme, data = trained
    key = scheme.keygen()
    assert isinstance(key, NoKey) and not scheme.capabilities.recovers
    cts = scheme.encrypt(to_tensor(data.x_test[:4]), key)
    expected = to_uint8(scheme.network()(to_tensor(data.x_test[:4])))
    for ct, pixels in zip(cts, expected, strict=True):
        back = ciphertext_from_bytes(ciphertext_to_bytes(ct))
        assert back.model_id == "transnet-test" and back.key_id == "" and not back.authenticated
        assert np.array_equal(back.pixels, pixels)
    with pytest.raises(SchemeError, match="not recoverable"):
        scheme.decrypt(cts, key)


def test_the_payload_round_trips(trained) -> None:
    scheme, data = trained
    psi = load_classifier(PSI)
    again = TransNetScheme.from_payload(scheme.payload(), "transnet-test", psi, PSI)
    x = to_tensor(data.x_test[:2])
    assert torch.equal(again.network()(x), scheme.network()(x))
    assert again.cloud_classifier() is psi and again.training == scheme.training


def test_the_report_sweeps_resumes_across_runs_and_scores_the_itn_attack(
    tmp_path, capsys, monkeypatch
) -> None:
    """A tiny sweep against the shipped ResNet-10 and ResNet-20 as clouds: the first run trains
    one network and reports a partial table; the second reuses it, trains the others, attacks
    the second cloud's networks too, and completes."""
    from noiseveil.app.reports import transnet

    budget = dataclasses.replace(
        transnet.BUDGETS["ci"], clouds=(PSI, "cifar10-resnet20"), itn_alphas=(0.0, 0.005, 0.1)
    )
    kwargs = dict(runs=tmp_path / "runs")
    first = transnet.run(tmp_path / "out", budget, max_networks=1, **kwargs)
    assert not first["complete"] and list(first["table1"][PSI]["alphas"]) == ["0"]
    assert "Partial" in (tmp_path / "out" / "report.md").read_text()
    second = transnet.run(tmp_path / "out", budget, **kwargs)
    assert second["complete"] and list(second["table1"][PSI]["alphas"]) == ["0", "0.1"]
    # the network of the first run was reused, not trained again; so was its ITN attack
    assert second["table1"][PSI]["alphas"]["0"]["training"] == first["table1"][PSI]["alphas"]["0"]["training"]
    assert second["itn"]["0"] == first["itn"]["0"]
    assert "ITN attack on h_θ for cifar10-resnet at α = 0: reused" in capsys.readouterr().out
    row = second["itn"]["0.1"]["attacks"]
    assert {"label-only", "itn", "protected image itself"} == set(row)
    assert 0 <= row["itn"]["ssim"]["mean"] <= 1 and "control" in row["itn"]
    assert len(second["itn"]["0.1"]["itn_psnr_db"]) == 16
    assert set(second["window"]) == {PSI, "cifar10-resnet20"}
    assert (tmp_path / "out" / "figures" / "transnet-tradeoff.png").stat().st_size > 5000
    # the second cloud's networks are attacked at the α every cloud is attacked at
    assert first["itn_other_clouds"] == {"cifar10-resnet20": {}}
    other = second["itn_other_clouds"]["cifar10-resnet20"]
    assert (
        list(other) == ["0.1"] and len(other["0.1"]["itn_psnr_db"]) == 16 and "examples" not in other["0.1"]
    )
    assert "### ψ = cifar10-resnet20, α = 0.1" in (tmp_path / "out" / "report.md").read_text()
    for fig in ("transnet-protected.png", "transnet-itn-psnr.png", "transnet-itn.png"):
        assert (tmp_path / "out" / "figures" / fig).stat().st_size > 1000
    assert all(v["spread_across_inputs"] >= 0 for v in second["table1"][PSI]["alphas"].values())
    # a fresh checkout (no runs/) resumes from the committed report: nothing is trained again,
    # and the figures are drawn from the example images kept beside it
    monkeypatch.setattr(transnet, "transform_network", _trained_again)
    (tmp_path / "out" / "figures" / "transnet-protected.png").unlink()
    third = transnet.run(tmp_path / "out", budget, runs=tmp_path / "fresh-runs")
    assert third["table1"] == second["table1"] and third["itn"] == second["itn"]
    assert third["protected_figure_alphas"] == [0.0, 0.1]
    assert (tmp_path / "out" / "figures" / "transnet-protected.png").stat().st_size > 1000


def test_the_report_waits_for_a_cloud_not_trained_yet_and_trains_in_the_budget_s_order(tmp_path) -> None:
    """The paper preset's clouds train for hours over sessions: the sweep goes on with the first
    cloud meanwhile, says which cloud waits and how to train it, and is not complete; it trains
    the α in the budget's order (the most telling first) and tables them in α's order."""
    from noiseveil.app.provenance import ReportError
    from noiseveil.app.reports import transnet

    budget = dataclasses.replace(transnet.BUDGETS["ci"], clouds=(PSI, "not-trained-cloud"), alphas=(0.1, 0.0))
    first = transnet.run(tmp_path / "out", budget, runs=tmp_path / "runs", max_networks=1)
    assert list(first["table1"]) == [PSI] and list(first["table1"][PSI]["alphas"]) == ["0.1"]
    assert first["clouds_not_trained"] == ["not-trained-cloud"] and not first["complete"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Not trained yet, so not in the tables: not-trained-cloud" in report
    assert "`noiseveil train-classifier not-trained-cloud`" in report
    second = transnet.run(tmp_path / "out", budget, runs=tmp_path / "runs")
    assert list(second["table1"][PSI]["alphas"]) == ["0", "0.1"] and second["alphas"] == [0.0, 0.1]
    assert not second["complete"]  # every α of the first cloud, but one cloud still waits
    with pytest.raises(ReportError, match="noiseveil train-classifier not-trained-cloud"):
        transnet.run(tmp_path / "other", dataclasses.replace(budget, clouds=("not-trained-cloud", PSI)))


def _trained_again(*args, **kwargs):
    raise AssertionError("a network was trained again")


def test_input_spread_is_zero_for_one_image_whatever_the_input() -> None:
    from noiseveil.app.reports.transnet import input_spread

    images = load_dataset("cifar10").x_test[:50]
    assert input_spread(np.repeat(images[:1], 50, axis=0)) == 0.0
    assert input_spread(images) > 20  # natural images differ by tens of levels per pixel


def test_protected_images_through_the_cli(trained, tmp_path, monkeypatch) -> None:
    """A TransNet model in a private zoo, used as a user would: encrypt without a key, the
    cloud classifies by the model in each header, decrypt says no, keys are refused."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from noiseveil import zoo
    from noiseveil.io.png import read_ciphertext, write_image

    scheme, data = trained
    weights = tmp_path / "weights"
    weights.mkdir()
    entry = zoo.read_manifest()[PSI]
    shutil.copy(zoo.WEIGHTS_DIR / entry["file"], weights / entry["file"])
    (weights / "manifest.json").write_text(json.dumps({PSI: entry}))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(zoo, "MANIFEST", weights / "manifest.json")
    info = {"kind": "scheme", "scheme": "transnet", "dataset": "cifar10", "classifier_id": PSI}
    zoo.save_weights("transnet-test", scheme.payload({"scheme": "transnet"}), info)
    for i in range(3):
        write_image(tmp_path / "plain" / f"{i}.png", data.x_test[i])

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "NOISEVEIL_SHIPPED_WEIGHTS": str(weights), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "noiseveil.app.cli", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    done = cli(
        "encrypt", str(tmp_path / "plain"), "-o", str(tmp_path / "prot"), "-m", "transnet-test", "--quiet"
    )
    assert done.returncode == 0, done.stderr
    protected = read_ciphertext(tmp_path / "prot" / "0.png")
    assert protected.model_id == "transnet-test" and protected.key_id == "" and not protected.authenticated
    labels = cli("classify", str(tmp_path / "prot"), "--quiet")
    assert labels.returncode == 0 and len(labels.stdout.splitlines()) == 3, labels.stderr
    refused = cli("decrypt", str(tmp_path / "prot"), "-o", str(tmp_path / "back"), "--quiet")
    assert refused.returncode == 1 and refused.stderr.count("not recoverable") == 3, refused.stderr
    assert not (tmp_path / "back").exists() and "Traceback" not in refused.stderr
    key = tmp_path / "k.key"
    key.write_bytes(b"")
    with_key = cli(
        "encrypt", str(tmp_path / "plain"), "-o", str(tmp_path / "p2"), "-m", "transnet-test", "-k", str(key)
    )
    assert with_key.returncode == 2 and "is keyless: -k does not apply" in with_key.stderr
    keygen = cli("keygen", str(tmp_path / "new.key"), "--model", "transnet-test")
    assert keygen.returncode == 2 and "keyless" in keygen.stderr and not (tmp_path / "new.key").exists()


def test_the_window_needs_the_accuracy_kept_and_the_image_hidden() -> None:
    from noiseveil.app.reports.transnet import window

    def alpha(accuracy: float, ssim: float) -> dict:
        return {"accuracy": accuracy, "ssim_to_plain": {"mean": ssim}}

    table = {
        "plain_accuracy": 0.90,
        "alphas": {"0.001": alpha(0.89, 0.6), "0.003": alpha(0.885, 0.05), "0.005": alpha(0.85, -0.02)},
    }
    assert window({"table1": {"psi": table}}) == {"psi": ["0.003"]}


def test_the_paper_s_table_i_stands_beside_a_cloud_trained_longer() -> None:
    """The paper budget's clouds are the same networks trained 30 epochs (``<id>-long``): its
    Table I rows still get the paper's figures beside them."""
    import json

    from noiseveil.app.provenance import RESULTS_DIR
    from noiseveil.app.reports.transnet import markdown

    report = json.loads((RESULTS_DIR / "transnet" / "transnet-report.json").read_text())
    report["table1"] = {f"{psi}-long": row for psi, row in report["table1"].items()}
    report["clouds"] = [f"{psi}-long" for psi in report["clouds"]]
    report["itn_other_clouds"] = {f"{psi}-long": a for psi, a in report["itn_other_clouds"].items()}
    text = markdown(report)
    assert "| cifar10-resnet20-long (paper) | 91.23 % |" in text and "| cifar10-vgg-long (paper) |" in text
