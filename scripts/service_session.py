"""The README's cloud session, run for real and recorded: every command and what it printed.

    python scripts/service_session.py        # writes results/service/session.json and session.md

A data provider and an authorised user on one machine, the cloud in its own process: serve,
make a provider and a user token, upload a folder of CIFAR-10 test images (encrypted locally
with a fresh key), list what the cloud holds by label, fetch one label and decrypt it locally;
the decrypted images are compared with the originals bit for bit. Tokens are shown shortened.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.app.service.launcher import ServerProcess
from noiseveil.data import fixed_subset, load_dataset, read_image
from noiseveil.io.png import write_image

MODEL = "ric-cifar10"  # the flagship: any key of the provider's, bit-exact recovery
IMAGES = 24


def main() -> None:
    data = load_dataset("cifar10")
    steps: list[dict[str, str | int]] = []
    with tempfile.TemporaryDirectory(prefix="noiseveil-session-") as tmp:
        work = Path(tmp)
        chosen = fixed_subset(len(data.x_test), IMAGES, seed=42)
        for i in chosen:
            write_image(work / "photos" / data.classes[data.y_test[i]] / f"{i:05d}.png", data.x_test[i])
        server = ServerProcess(work / "cloud", models=(MODEL,), port=8000)
        try:
            admin = server.admin_token
            steps.append(
                {
                    "command": "noiseveil serve --data-dir cloud --models " + MODEL,
                    "output": _shorten(server.log.read_text().split("INFO:")[0].strip()),
                    "exit": 0,
                }
            )

            def run(command: str, token: str = "", record: bool = True) -> str:
                env = {**os.environ, "NOISEVEIL_TOKEN": token, "OMP_NUM_THREADS": "2"}
                proc = subprocess.run(
                    [sys.executable, "-m", "noiseveil.app.cli", *shlex.split(command)],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                if record:
                    shown = "\n".join(s for s in (proc.stdout.strip(), proc.stderr.strip()) if s)
                    steps.append(
                        {
                            "command": "noiseveil " + command,
                            "output": _shorten(shown),
                            "exit": proc.returncode,
                        }
                    )
                if proc.returncode != 0:
                    raise SystemExit(f"noiseveil {command} failed: {proc.stderr}")
                return proc.stdout.strip()

            provider = run("cloud token new --role provider --name lab", admin)
            user = run("cloud token new --role user --name doctor", admin)
            run(f"keygen provider.key --model {MODEL}")
            run(f"cloud upload photos -m {MODEL} -k provider.key --quiet", provider)
            counts = run("cloud list --counts", user)
            label = counts.splitlines()[0].split("\t")[1]
            run(f"cloud list --label {label}", user)
            run(f"cloud fetch --label {label} -o recovered --decrypt -k provider.key --quiet", user)
        finally:
            server.stop()
        recovered = {read_image(p).tobytes() for p in (work / "recovered").glob("*.png")}
        originals = {data.x_test[i].tobytes() for i in chosen}
        exact = bool(recovered) and recovered <= originals
    result = {
        **provenance([data.source_id], [MODEL]),
        "model": MODEL,
        "images": IMAGES,
        "fetched_label": int(label),
        "recovered_images": len(recovered),
        "recovered_bit_for_bit": exact,
        "steps": steps,
    }
    write_result(RESULTS_DIR / "service" / "session.json", result)
    (RESULTS_DIR / "service" / "session.md").write_text(markdown(result))
    print(markdown(result))
    if not exact:
        raise SystemExit("the fetched images did not decrypt to the originals")


def _shorten(text: str) -> str:
    """Tokens printed in full once are shown shortened here (a result file is public)."""
    return re.sub(r"nv_([A-Za-z0-9_-]{4})[A-Za-z0-9_-]+", r"nv_\1…", text)


def markdown(result: dict) -> str:
    lines = [
        "```console",
        *(
            f"$ {s['command']}\n{s['output']}" if s["output"] else f"$ {s['command']}"
            for s in result["steps"]
        ),
        "```",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
