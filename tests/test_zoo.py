"""The model zoo: every shipped weight file is small, checksummed and traceable to a command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from noiseveil import zoo
from noiseveil.app.provenance import REPO_ROOT, RESULTS_DIR
from noiseveil.checksums import sha256_file
from noiseveil.crypto.keys import SecretKey

MANIFEST = zoo.read_manifest()


@pytest.mark.parametrize("model_id", sorted(MANIFEST))
def test_shipped_weights_are_small_checksummed_and_traceable(model_id):
    entry = MANIFEST[model_id]
    path = zoo.WEIGHTS_DIR / entry["file"]
    assert path.stat().st_size < 10_000_000
    assert sha256_file(path) == entry["sha256"]
    if entry["command"].startswith("python scripts/convert_"):  # converted, not trained: the entry says how
        assert entry["git_commit"] != "unknown" and (REPO_ROOT / entry["command"].split()[1]).is_file()
        return
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
    with pytest.raises(zoo.ZooError, match="no model 'nope' in the zoo"):
        zoo.load_payload("nope")


@pytest.mark.parametrize(
    "model_id", sorted(k for k, v in MANIFEST.items() if v["kind"] == "classifier" and "test_accuracy" in v)
)
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


def test_an_installed_package_saves_new_models_in_the_users_zoo(tmp_path, monkeypatch):
    """A wheel's package folder is not the user's to write: outside a checkout, `train` goes to the
    user's zoo and the shipped one is left as installed."""
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    shipped.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", shipped)
    monkeypatch.setattr(zoo, "MANIFEST", shipped / "manifest.json")
    monkeypatch.setenv("NOISEVEIL_WEIGHTS", str(user))
    monkeypatch.setattr(zoo, "source_checkout", lambda: None)
    assert zoo.save_weights("m", {"v": 1}, {"kind": "classifier"}).parent == user
    assert list(shipped.iterdir()) == [] and zoo.read_manifest()["m"]["zoo"] == "user"
    monkeypatch.setattr(zoo, "source_checkout", lambda: tmp_path)
    assert zoo.save_weights("n", {"v": 1}, {"kind": "classifier"}).parent == shipped


@pytest.fixture
def private_zoo(tmp_path, monkeypatch):
    """A zoo folder holding only the shipped MNIST classifier; results go to tmp_path too."""
    from noiseveil.app import train_commands

    weights = tmp_path / "weights"
    weights.mkdir()
    entry = MANIFEST["mnist-cnn"]
    shutil.copy(zoo.WEIGHTS_DIR / entry["file"], weights / entry["file"])
    (weights / "manifest.json").write_text(json.dumps({"mnist-cnn": entry}))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(zoo, "MANIFEST", weights / "manifest.json")
    monkeypatch.setattr(train_commands, "RESULTS_DIR", tmp_path / "results")
    return tmp_path


def test_train_goes_through_the_scheme_and_ships_a_working_model(private_zoo, capsys):
    from noiseveil.app.cli import main
    from noiseveil.data import load_dataset, to_tensor, to_uint8

    assert main(["train", "ric-mnist", "--as", "my-ric"]) == 0
    entry = zoo.read_manifest()["my-ric"]
    assert entry["scheme"] == "ric-lossless" and entry["digit_bits"] == 5 and entry["kind"] == "scheme"
    assert (private_zoo / "results" / "training" / "my-ric.json").exists()
    scheme = zoo.load_scheme("my-ric")
    x = to_tensor(load_dataset("mnist").x_test[:4])
    key = scheme.keygen()
    assert np.array_equal(to_uint8(scheme.decrypt(scheme.encrypt(x, key), key)), to_uint8(x))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "ric-mnist", "--as", "a", "--steps", "5"], "has no networks"),
        (["train", "ric-mnist", "--as", "b", "--preset", "paper"], "has no networks"),
        (
            ["train", "etc-cifar10-vit", "--as", "c", "--preset", "paper"],
            "EtC trains its twin's architecture",
        ),
    ],
)
def test_train_refuses_what_does_not_apply_to_the_scheme(private_zoo, capsys, argv, message):
    from noiseveil.app.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(zoo.read_manifest()) == {"mnist-cnn"}


def test_train_refuses_a_key_for_a_model_that_works_with_every_key(private_zoo, capsys):
    from noiseveil.app.cli import main

    key = private_zoo / "k.key"
    SecretKey.generate().save(key)
    assert main(["train", "ric-mnist", "--as", "d", "--key", str(key)]) == 2
    assert "works with every key" in capsys.readouterr().err
