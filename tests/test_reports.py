"""The report commands run end to end on a tiny budget (real models, real data, real figures)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from noiseveil.app.provenance import ReportError, stages_to_run
from noiseveil.app.reports import security
from noiseveil.zoo import read_manifest, shipped_schemes

torch.set_num_threads(1)

TINY = security.BUDGETS["ci"]


@pytest.mark.parametrize("n_train", [50_000, 2_442])  # CIFAR-10's and LFW's training splits
def test_attacker_split_keeps_kpa_pairs_apart_and_leaves_the_attacker_images(n_train) -> None:
    budget = security.SecurityBudget()
    cloud, kpa, own, split = security.attacker_split(n_train, budget)
    assert len(kpa) == budget.kpa_pairs and not set(kpa) & (set(cloud) | set(own))
    assert len(own) >= budget.itn_pairs // 2 and len(cloud) > 0
    assert split["roles_overlap"] == bool(set(cloud) & set(own)) == (n_train < 4_000)


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
    entry = saved["models"]["ric-cifar10"]
    assert entry["budget"]["network_steps"] == 2 and entry["git_commit"] and saved["git_commit"]
    report = (tmp_path / "report.md").read_text()
    assert "ric-cifar10" in report and "label-only" in report and "same-label image" in report
    assert all("control" in m["attacks"][name] for name in ("label-only", "kpa", "itn", "cloud"))
    for fig in ("attacks-ric-cifar10.png", "key-sweep-ric-cifar10.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000


def test_security_report_for_some_models_keeps_the_others(tmp_path, monkeypatch) -> None:
    """A run for one model replaces its entry only; every entry names its own run."""
    saved = {"models": {"ric-lfw": {"data": ["lfw:old"], "command": "earlier", "attacks": {}}}}
    (tmp_path / "security-report.json").write_text(json.dumps(saved))
    monkeypatch.setattr(security, "run_model", lambda model_id, *_: {"attacks": {"stub": model_id}})
    monkeypatch.setattr(security, "markdown", lambda r: "")
    result = security.run(tmp_path, ["ric-cifar10"], TINY)
    assert list(result["models"]) == ["ric-cifar10", "ric-lfw"]
    assert result["models"]["ric-lfw"] == saved["models"]["ric-lfw"]
    new = result["models"]["ric-cifar10"]
    assert new["attacks"] == {"stub": "ric-cifar10"} and new["budget"]["network_steps"] == 2
    assert "lfw:old" in result["data"] and new["git_commit"]
    assert json.loads((tmp_path / "security-report.json").read_text())["models"] == result["models"]


ETC_MODELS = {"cifar10-convmixer", "cifar10-vit", "etc-cifar10-convmixer", "etc-cifar10-vit"}


@pytest.mark.skipif(not set(read_manifest()) >= ETC_MODELS, reason="EtC models not shipped")
def test_etc_report_on_a_slice_of_cifar10(tmp_path) -> None:
    from noiseveil.app.reports import etc
    from noiseveil.data import ImageDataset, load_dataset

    d = load_dataset("cifar10")
    data = ImageDataset(
        "cifar10", d.x_train[:96], d.y_train[:96], d.x_test[:48], d.y_test[:48], d.classes, "t"
    )
    result = etc.run(tmp_path, etc.BUDGETS["ci"], data=data)
    rows = {r["model"]: r for r in result["accuracy"]}
    assert set(rows) == ETC_MODELS
    for row in rows.values():
        assert 0.0 <= row["accuracy_jpeg_q80"] <= 1.0 and row["parameters"] > 0
    # each EtC model is better on its own domain than the plain twin on EtC images
    for etc_id in ("etc-cifar10-convmixer", "etc-cifar10-vit"):
        assert rows[etc_id]["accuracy"] > rows[etc_id]["plain_model_on_etc_images"]
    sizes = result["file_sizes"]
    assert sizes["images"] == 144 and sizes["megabytes"]["plain"]["uncompressed"] == 144 * 32 * 32 * 3 / 1e6
    assert set(result["robustness"]["attacks"]) == {"label-only", "fr", "itn", "ciphertext itself"}
    assert "Table IV" in (tmp_path / "report.md").read_text()
    for fig in ("lpips-etc.png", "attacks-etc.png", "attacks-ssim-etc.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000


@pytest.mark.skipif("ric-cifar10-masked" not in shipped_schemes(), reason="ric-cifar10-masked not shipped")
def test_ric_report_on_a_tiny_budget(tmp_path, capsys) -> None:
    from noiseveil.app.reports import ric

    budget = ric.BUDGETS["ci"]
    result = ric.run(tmp_path / "out", budget, ["ric-cifar10-masked"], runs=tmp_path / "runs")
    res = result["in_dataset"]["ric-cifar10-masked"]
    assert res["ric"]["images"] == 12 and res["ric"]["adp_percent"] == 0.0
    assert res["ric"]["psnr_db"]["mean"] > res["lsb_baseline"]["psnr_db"]["mean"] + 8
    # 4 bits kept, the middle of each 16-level bin: about 20·log10(255 / (16/√12)) = 34.8 dB
    assert 33.0 < res["lsb_baseline"]["psnr_db"]["mean"] < 36.5
    # the pad hides the image from a low-pass filter; the same networks without it do not
    lowpass = ric.LOWPASS
    padded, pad_off = (
        res["privacy"]["with keyed pad"][lowpass],
        res["privacy"]["same networks, pad off"][lowpass],
    )
    assert padded["abs_correlation"]["mean"] < padded["abs_correlation_chance"]["mean"] + 0.1
    assert pad_off["abs_correlation"]["mean"] > pad_off["abs_correlation_chance"]["mean"] + 0.2
    assert [row["images_from"] for row in result["cross_dataset"]] == ["cifar10", "scikit-image photos"]
    assert result["cross_dataset"][1]["images"] == len(ric.NATURAL_IMAGES)
    assert [row["ablation"] for row in result["ablation"]["rows"]] == list(ric.ABLATIONS)
    assert [row["lam"] for row in result["lam_sweep"]["rows"]] == [0.6, 0.7]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "4-bit LSB w/ NAE" in report and "RNI w/ SRL" in report
    for fig in ("recovery-cifar10.png", "privacy-cifar10.png", "lambda-sweep.png"):
        assert (tmp_path / "out" / "figures" / fig).stat().st_size > 1000
    # The lossless preset's rows: every image back bit for bit, every label kept.
    for model_id, entry in result["lossless"]["in_dataset"].items():
        row = entry["ric"]
        assert row["bit_exact_share"] == 1.0 and row["adp_percent"] == 0.0, model_id
        assert row["image_bits_per_sample"]["max"] < row["digit_bits"]
    assert "## The lossless preset" in report
    # A second run of the same budget resumes from the finished stages instead of redoing them.
    capsys.readouterr()
    again = ric.run(tmp_path / "out", budget, ["ric-cifar10-masked"], runs=tmp_path / "runs")
    assert capsys.readouterr().out.count("reused from") == 5
    for part in ("in_dataset", "cross_dataset", "ablation", "lam_sweep", "lossless"):
        assert json.dumps(again[part]) == json.dumps(result[part])
    assert again["seconds"] == result["seconds"]
    # One stage re-measured, the others kept as saved, with the provenance of each.
    only = ric.run(
        tmp_path / "out", budget, ["ric-cifar10-masked"], runs=tmp_path / "other", only_stages=["lossless"]
    )
    assert json.dumps(only["ablation"]) == json.dumps(result["ablation"])
    assert set(only["stage_provenance"]) == {"lossless"}
    with pytest.raises(ReportError, match="unknown report stage"):
        ric.run(tmp_path / "out", budget, ["ric-cifar10-masked"], only_stages=["nope"])


def test_a_report_of_some_stages_keeps_the_others_as_saved(tmp_path) -> None:
    saved = tmp_path / "r.json"
    known = ("a", "b")
    assert stages_to_run(saved, None, known) == (["a", "b"], {}, {})
    with pytest.raises(ReportError, match="no saved report"):
        stages_to_run(saved, ["a"], known)
    saved.write_text(json.dumps({"a": 1, "b": 2, "seconds": {"a": 3.0}, "stage_provenance": {"b": {"c": 1}}}))
    wanted, kept, seconds = stages_to_run(saved, ["a"], known)
    assert wanted == ["a"] and kept["b"] == 2 and seconds == {"a": 3.0}
    assert kept["stage_provenance"] == {"b": {"c": 1}}
    with pytest.raises(ReportError, match="unknown report stage c; stages: a, b"):
        stages_to_run(saved, ["c"], known)


def test_every_paper_report_has_three_budget_presets_in_order_of_size() -> None:
    """--budget ci, default and paper on every report that runs: default is what results/ was
    made with (the dataclass's defaults), and no count grows from ci to default to paper."""
    import dataclasses

    from noiseveil.app.reports import avp, avp_sweep, etc, ric, transnet
    from noiseveil.app.reports.registry import PAPER_REPORTS, REPORTS

    modules = {"ric": ric, "etc": etc, "avp": avp, "avp-sweep": avp_sweep, "transnet": transnet}
    modules["security"] = security
    assert set(modules) == set(PAPER_REPORTS) and all("budget" in REPORTS[n].options for n in modules)
    for name, module in modules.items():
        presets = module.BUDGETS
        assert set(presets) == {"ci", "default", "paper"} and module.SCALES, name
        assert presets["default"] == type(presets["default"])(), name
        for f in dataclasses.fields(presets["default"]):
            sizes = [getattr(presets[p], f.name) for p in ("ci", "default", "paper")]
            if all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
                assert sizes == sorted(sizes), (name, f.name, sizes)
            elif all(isinstance(v, tuple) for v in sizes) and f.name == "points":
                ci, default, paper = sizes
                assert all(p in default for p in ci) and all(p in paper for p in default), name


def test_a_run_at_another_budget_writes_beside_the_committed_report_not_over_it(monkeypatch) -> None:
    """`noiseveil report transnet --budget paper` must not replace results/transnet (made at the
    default budget) with a partial sweep of hours: it writes results/transnet-paper, which the
    registry renders too."""
    from noiseveil.app import commands
    from noiseveil.app.cli import build_parser
    from noiseveil.app.reports import registry

    written = []
    fake = dataclasses.replace(registry.REPORTS["transnet"], run=lambda out, _: written.append(out) or "ok")
    monkeypatch.setitem(registry.REPORTS, "transnet", fake)
    for argv, folder in (
        ([], "transnet"),
        (["--budget", "default"], "transnet"),
        (["--budget", "paper"], "transnet-paper"),
    ):
        commands.cmd_report(build_parser().parse_args(["report", "transnet", *argv]))
        assert written.pop().name == folder
    assert registry.REPORTS["transnet-paper"].reads == ("transnet-paper/transnet-report.json",)
