"""The model zoo: every shipped weight file is small, checksummed and traceable to a command."""

from __future__ import annotations

import json
import shutil

import pytest

from noiseveil import zoo
from noiseveil.app.provenance import RESULTS_DIR

MANIFEST = zoo.read_manifest()


@pytest.mark.parametrize("model_id", sorted(MANIFEST))
def test_shipped_weights_are_small_checksummed_and_traceable(model_id):
    entry = MANIFEST[model_id]
    path = zoo.WEIGHTS_DIR / entry["file"]
    assert path.stat().st_size < 10_000_000
    assert zoo.sha256_file(path) == entry["sha256"]
    result = json.loads((RESULTS_DIR / "training" / f"{model_id}.json").read_text())
    assert result["command"].startswith("noiseveil train")
    assert result["git_commit"] != "unknown"
    assert entry["command"] == result["command"]


def test_corrupt_weights_are_refused(tmp_path, monkeypatch):
    model_id = sorted(MANIFEST)[0]
    weights = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, weights)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(zoo, "MANIFEST", weights / "manifest.json")
    zoo.load_payload(model_id)  # intact copy loads
    path = weights / MANIFEST[model_id]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="checksum mismatch"):
        zoo.load_payload(model_id)


def test_unknown_model_id_names_the_shipped_ones():
    with pytest.raises(zoo.ZooError, match="no shipped weights for model id 'nope'"):
        zoo.load_payload("nope")


@pytest.mark.parametrize("model_id", sorted(k for k, v in MANIFEST.items() if v["kind"] == "classifier"))
def test_shipped_classifier_reaches_its_recorded_accuracy(model_id):
    from noiseveil.classifiers.training import accuracy
    from noiseveil.data import fixed_subset, load_dataset

    data = load_dataset(MANIFEST[model_id]["dataset"])
    model = zoo.load_classifier(model_id)
    # A fixed 1000-image subset (test splits are sorted by class): enough to catch a broken
    # load or preprocessing, fast enough for every run; 5 points of slack cover subset noise.
    idx = fixed_subset(len(data.x_test), 1000)
    acc = accuracy(model, data.x_test[idx], data.y_test[idx])
    assert acc >= MANIFEST[model_id]["test_accuracy"] - 0.05


def test_training_refuses_an_existing_id_before_any_work(capsys):
    from noiseveil.app.cli import main

    for argv in (
        ["train-classifier", "mnist-cnn", "--epochs", "1"],
        ["train", "ric-mnist-masked", "--steps", "1"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "exists" in err and "--replace" in err and "--as" in err and len(err.strip().splitlines()) == 1


def test_replacing_a_model_keeps_the_old_weights_loadable(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(zoo, "MANIFEST", weights / "manifest.json")
    zoo.save_weights("m", {"v": 1}, {"kind": "classifier"})
    old_sha = zoo.read_manifest()["m"]["sha256"]
    with pytest.raises(zoo.ZooError, match="exists"):
        zoo.save_weights("m", {"v": 2}, {"kind": "classifier"})
    assert zoo.load_payload("m") == {"v": 1}
    zoo.save_weights("m", {"v": 2}, {"kind": "classifier"}, replace=True)
    assert zoo.load_payload("m") == {"v": 2}
    archived = f"m@{old_sha[:12]}"
    assert zoo.load_payload(archived) == {"v": 1}
    assert zoo.read_manifest()[archived]["archived_from"] == "m"
