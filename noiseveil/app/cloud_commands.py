"""`noiseveil serve` and `noiseveil cloud ...`: the cloud's server and its clients' commands.

The data provider encrypts locally and uploads (``cloud upload``); the authorised user lists
by label and fetches, decrypting locally (``cloud fetch --decrypt -k KEY``); the admin makes
and revokes tokens (``cloud token``). Keys never leave the machine they are on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from noiseveil.app.exit_codes import EXIT_OK
from noiseveil.app.service.client import CloudClient, CloudError
from noiseveil.app.service.storage import name_problem
from noiseveil.exceptions import NoiseveilError
from noiseveil.io.png import EXISTS, CiphertextFileError
from noiseveil.pipeline import Report, left_out, plan, without_existing_outputs
from noiseveil.progress import progress_bar

if TYPE_CHECKING:
    from noiseveil.crypto.keys import Key

DEFAULT_URL = "http://127.0.0.1:8000"


def cmd_serve(args: argparse.Namespace) -> int:
    from noiseveil.app.service.server import ServiceSettings, serve

    settings = ServiceSettings(
        data_dir=args.data_dir,
        database_url=args.database_url or os.environ.get("NOISEVEIL_DATABASE_URL"),
        models=tuple(args.models) if args.models else None,
        protocol_classifiers=tuple(args.protocol_classifiers) if args.protocol_classifiers else None,
        max_upload_bytes=args.max_upload_bytes,
        batch_wait=args.batch_wait_ms / 1000,
    )
    serve(settings, args.host, args.port, args.workers)
    return EXIT_OK


def cmd_cloud(args: argparse.Namespace) -> int:
    with CloudClient(args.url or os.environ.get("NOISEVEIL_URL", DEFAULT_URL), _token(args)) as client:
        return {"upload": upload, "list": list_images, "fetch": fetch, "token": token}[args.cloud_command](
            client, args
        )


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            return args.token_file.read_text().strip()
        except OSError as err:
            raise CloudError(f"{args.token_file}: cannot read the token ({err.strerror})") from None
    return os.environ.get("NOISEVEIL_TOKEN", "")


def upload(client: CloudClient, args: argparse.Namespace) -> int:
    """Encrypt locally (with -m), then upload every ciphertext; a second run re-encrypts nothing
    and uploads only what the cloud does not hold (the same bytes are answered 'already stored')."""
    from noiseveil.app.services import finish, say_left_out

    report, start = Report("upload"), time.perf_counter()
    if args.model is not None:
        files, folder, encrypted = _encrypt_for_upload(args)
        report.absorb(encrypted)
    else:
        files = [src for src, _ in plan(args.input, None)]
        folder = args.input if args.input.is_dir() else args.input.parent
        report.left_out = say_left_out("upload", args.input, left_out(args.input, None))
    duplicates = 0
    for path in progress_bar(files, desc="upload", unit="img", disable=args.quiet):
        name = path.relative_to(folder).as_posix() if args.send_names else None
        try:
            row = client.upload(path.read_bytes(), name)
        except CloudError as err:
            if err.status is None:  # the cloud is gone: the rest would fail alike
                raise
            report.fail(path, err)
            continue
        except OSError as err:
            report.fail(path, f"cannot read ({err.strerror})")
            continue
        report.done += 1
        duplicates += row["duplicate"]
    report.seconds = time.perf_counter() - start
    if duplicates:
        print(f"{duplicates} of the uploaded files were stored already (same bytes)", file=sys.stderr)
    return finish(report)


def _encrypt_for_upload(args: argparse.Namespace) -> tuple[list[Path], Path, Report]:
    """Encrypt the plaintexts into the ciphertext folder; those encrypted by an earlier run are
    kept as they are (re-encrypting would make new bytes, and a second copy in the cloud).
    The ciphertexts to upload, their folder, and the encryption's report."""
    from noiseveil.app.services import key_for, open_scheme, say_left_out
    from noiseveil.pipeline import encrypt_files

    scheme = open_scheme(args.model, None)
    key = key_for(scheme, args.key)
    folder = args.ciphertexts or args.input.with_name(args.input.name + "-ciphertexts")
    pairs = plan(args.input, folder if args.input.is_dir() else folder / (args.input.stem + ".png"))
    left = say_left_out("upload", args.input, left_out(args.input, folder))
    todo, earlier = without_existing_outputs(pairs)
    print(
        f"encrypting {len(todo)} of {len(pairs)} images into {folder} ({earlier} done by an earlier run)",
        file=sys.stderr,
    )
    report = encrypt_files(scheme, key, todo, args.batch_size, progress=not args.quiet)
    report.done = 0  # counted once, when uploaded
    report.left_out = left
    return [dst for _, dst in pairs if dst.exists()], folder, report


def _rows(client: CloudClient, args: argparse.Namespace) -> list[dict]:
    if args.id:
        return [client.image(i) for i in args.id]
    return list(client.images(label=args.label, model=args.model, since=args.since, until=args.until))


def list_images(client: CloudClient, args: argparse.Namespace) -> int:
    if args.counts:
        rows = client.label_counts()
        for r in rows:
            print(f"{r['model_id']}\t{r['label']}\t{r['class_name'] or '-'}\t{r['count']}")
        return EXIT_OK
    rows = _rows(client, args)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            columns = [r["id"], r["label"], r["class_name"] or "-", r["model_id"], r["uploaded_at"]]
            print("\t".join(map(str, [*columns, r.get("file_name") or "-"])))
        print(f"{len(rows)} images", file=sys.stderr)
    return EXIT_OK


def fetch(client: CloudClient, args: argparse.Namespace) -> int:
    """Download the matching ciphertexts into -o, under the names they were uploaded with
    (else as ID.png); with --decrypt, decrypt them there instead, locally, with the key (the
    ciphertexts go through a temporary folder)."""
    from noiseveil.app.services import finish

    if args.decrypt:  # the key is checked before anything is asked of the cloud
        if args.key is None:
            raise CloudError("--decrypt needs the key: -k KEY")
        from noiseveil.crypto.keys import load_key

        key = load_key(args.key)
    rows = _rows(client, args)
    if args.decrypt:
        with tempfile.TemporaryDirectory(prefix="noiseveil-fetch-") as tmp:
            downloaded = _download(client, rows, Path(tmp), args.quiet)
            report = _decrypt(Path(tmp), key, args)  # done: the images decrypted
            report.failures = downloaded.failures + report.failures
            report.action = "fetch and decrypt"
    else:
        report = _download(client, rows, args.output, args.quiet)
    return finish(report)


def _download(client: CloudClient, rows: list[dict], folder: Path, quiet: bool) -> Report:
    report = Report("fetch")
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    for row in progress_bar(rows, desc="fetch", unit="img", disable=quiet):
        name = row.get("file_name") or f"{row['id']}.png"
        problem = name_problem(name)  # checked here too: this machine's files are at stake
        if problem is not None:
            report.fail(
                Path(f"{row['id']}.png"), f"image {row['id']}: stored name {name!r} not used: {problem}"
            )
            continue
        target = folder / name
        if target in taken:  # two uploads of one name: the later keeps its id beside it
            target = target.with_name(f"{target.stem}-{row['id']}{target.suffix}")
        taken.add(target)
        try:
            data = client.download(row["id"])
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as f:  # never overwrite
                f.write(data)
        except FileExistsError:
            report.fail(target, CiphertextFileError(f"{target}: {EXISTS}"))
            continue
        except NoiseveilError as err:
            report.fail(target, err)
            continue
        report.done += 1
    return report


def _decrypt(folder: Path, key: Key, args: argparse.Namespace) -> Report:
    from noiseveil.app.services import schemes_by_id
    from noiseveil.pipeline import decrypt_files

    pairs = plan(folder, args.output)
    report = decrypt_files(schemes_by_id(None), key, pairs, args.batch_size, progress=not args.quiet)
    # name failures by the fetched name, not the temporary folder that is about to go
    report.failures = [
        (p.relative_to(folder), r.replace(str(folder) + os.sep, "")) for p, r in report.failures
    ]
    return report


def token(client: CloudClient, args: argparse.Namespace) -> int:
    if args.token_action == "new":
        made = client.new_token(args.name, args.role)
        # the token goes to stdout alone (`> provider.token`); this line says where it went
        made_line = f"token {made['id']} ({made['role']}, {made['name']})"
        if sys.stdout.isatty():
            print(f"{made_line}; shown once, keep it:", file=sys.stderr)
        else:
            print(
                f"{made_line} written to standard output; shown once, keep what it went to", file=sys.stderr
            )
        print(made["token"])
    elif args.token_action == "list":
        for t in client.tokens():
            state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "live"
            print(f"{t['id']}\t{t['role']}\t{t['name']}\t{t['created_at']}\t{state}")
    else:
        client.revoke(args.token_id)
        print(f"token {args.token_id} revoked", file=sys.stderr)
    return EXIT_OK
