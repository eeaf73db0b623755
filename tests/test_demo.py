"""`noiseveil demo`, the README's main job, in a fresh process: every shipped model's row, the
recovering schemes recover, the one that does not says so, a grid per model, exit 0."""

from __future__ import annotations

import json

from conftest import run_cli

from noiseveil.zoo import load_scheme, shipped_schemes


def test_the_main_job_runs_every_shipped_model(tmp_path) -> None:
    proc = run_cli(["demo", "--images", "2", "--out", str(tmp_path)], timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = tmp_path.iterdir()
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.split()}
    for model_id in shipped_schemes():
        assert model_id in rows, f"{model_id} missing from the demo's table"
        assert (run / f"grid-{model_id}.png").stat().st_size > 1000
        psnr_column = rows[model_id][5]  # model, images, agreement, accuracy, bit-exact, PSNR, ...
        if load_scheme(model_id).capabilities.recovers:
            assert float(psnr_column) > 12.0, rows[model_id]
        else:
            assert psnr_column == "-", rows[model_id]
    # The run's record (what scripts/record_demo.py keeps for the docs) is the printed table.
    record = json.loads((run / "demo.json").read_text())
    assert record["images_per_model"] == 2 and record["git_commit"] and "demo --images 2" in record["command"]
    assert [r["model"] for r in record["rows"]] == shipped_schemes()
    assert all(r["PSNR dB"] == rows[r["model"]][5] for r in record["rows"])
    assert record["grids"] == [f"grid-{m}.png" for m in shipped_schemes()]


def test_the_demo_says_what_it_is_doing_at_every_step(tmp_path, capsys, monkeypatch) -> None:
    """Issue 27: "avp-lfw (2 of 11)" and then nothing for about 30 s. Each step of a model's run
    (loading, encrypting, decrypting, classifying) is a line before it starts; one model here."""
    from noiseveil.app import demo_commands
    from noiseveil.app.cli import main

    model = "etc-cifar10-convmixer"
    monkeypatch.setattr(demo_commands, "shipped_schemes", lambda: [model])
    assert main(["demo", "--images", "2", "--out", str(tmp_path)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("demo: ")]
    said = [line for line in said if ": still at it (" not in line]  # a busy machine's heartbeats
    assert said == [
        f"demo: {model}: (1 of 1) loading the model and the cifar10 test images ...",
        f"demo: {model}: encrypting 2 images ...",
        f"demo: {model}: decrypting 2 images ...",
        f"demo: {model}: classifying the plaintexts and the ciphertexts ...",
    ]
