"""The CLI's command handlers, by name: ``noiseveil X`` runs ``cmd_X`` (argument parsing lives in
:mod:`noiseveil.app.cli`). The handlers of a family of commands live in a module of their own
(``file_commands``, ``demo_commands``, ``model_commands``, ``cloud_commands``, ``train_commands``)
and are imported here; what several of them share is in :mod:`noiseveil.app.services`."""

from __future__ import annotations

import argparse

from noiseveil.app.cloud_commands import cmd_cloud, cmd_serve  # noqa: F401  (dispatched by name)
from noiseveil.app.demo_commands import cmd_demo, cmd_evaluate  # noqa: F401  (dispatched by name)
from noiseveil.app.exit_codes import EXIT_OK
from noiseveil.app.file_commands import cmd_classify, cmd_decrypt, cmd_encrypt  # noqa: F401
from noiseveil.app.model_commands import cmd_model  # noqa: F401  (dispatched by name)
from noiseveil.app.services import format_table
from noiseveil.checksums import sha256_bytes
from noiseveil.crypto.keys import load_key
from noiseveil.data import cache_dir
from noiseveil.zoo import (
    ZooError,
    load_scheme,
    model_figure,
    read_manifest,
)


def cmd_keygen(args: argparse.Namespace) -> int:
    """A new key made by the scheme of ``--model`` (trained, for schemes whose key is a
    network), or with ``--demo`` the PUBLIC demo key the model ships with."""
    scheme = load_scheme(args.model)
    if scheme.capabilities.key is None:
        raise ZooError(f"model {args.model} is keyless: it needs no key (encrypt without -k)")
    if args.path.exists():  # before minutes of training, not after
        raise ZooError(f"{args.path}: exists; refusing to overwrite a key file")
    if args.demo:
        key = scheme.demo_key()
        key.save(args.path)
        print(f"wrote {args.path} (key id {key.key_id}): the PUBLIC demo key of {args.model}, no privacy")
        return EXIT_OK
    checkpoint = cache_dir() / "keygen" / f"{args.model}-{sha256_bytes(str(args.path.resolve()))[:16]}.ckpt"
    key = scheme.keygen(progress=not args.quiet, checkpoint=checkpoint, budget=args.steps)
    key.save(args.path)
    checkpoint.unlink(missing_ok=True)
    print(f"wrote {args.path} (key id {key.key_id}, mode 0600); keep it secret, keep a backup")
    if scheme.capabilities.key_bound_to_model:
        print(
            f"note: {args.model} classifies images of its own key only; train a model for this key "
            f"(noiseveil train {args.model} --as ID --key {args.path}) or use --demo"
        )
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    manifest = read_manifest()
    if not manifest:
        raise ZooError("no shipped models")
    rows = []
    for model_id, e in sorted(manifest.items()):
        metric = model_figure(e)
        rows.append(
            {
                "id": model_id,
                "zoo": "yours" if e.get("zoo") == "user" else "shipped",
                "kind": e["kind"],
                "dataset": e.get("dataset") or "-",
                "figure": metric,
                "size": f"{e['bytes'] / 1e6:.2f} MB",
                "sha256": e["sha256"][:12],
            }
        )
    print(format_table(rows))
    return EXIT_OK


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from noiseveil.app.train_commands import train_classifier_command

    r = train_classifier_command(
        args.model_id, args.epochs, args.checkpoint_dir, args.save_as, args.replace, args.stop_after
    )
    if r.get("partial"):
        print(
            f"{args.model_id}: stopped after epoch {len(r['history'])} of {r['epochs']} (test accuracy "
            f"{100 * r['test_accuracy']:.2f}%); the same command continues from {r['checkpoint']}"
        )
        return EXIT_OK
    print(f"{args.model_id}: test accuracy {100 * r['test_accuracy']:.2f}% in {r['train_seconds']:.0f}s")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from noiseveil.app.train_commands import train_scheme_command

    key = load_key(args.key) if args.key else None
    r = train_scheme_command(
        args.model_id,
        args.steps,
        args.checkpoint_dir,
        args.preset,
        args.save_as,
        key,
        args.replace,
        args.cloud,
    )
    done = f"trained in {r['train_seconds']:.0f}s" if r["train_seconds"] else "shipped (nothing to train)"
    print(f"{args.model_id}: {done}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from noiseveil.app.provenance import RESULTS_DIR
    from noiseveil.app.reports.registry import OPTION_FLAGS, REPORTS, results_folder

    report, out = REPORTS[args.paper], args.out or RESULTS_DIR / results_folder(args.paper, args.budget)
    if args.render_only:  # text changes only: every number is re-read from the JSON
        saved = report.render_saved(out)
        print(f"wrote {out / 'report.md'} from {saved}")
        return EXIT_OK
    values = {flag: getattr(args, flag.replace("-", "_")) for flag in OPTION_FLAGS}
    given = {flag: value for flag, value in values.items() if value is not None}
    report.check_options(given)  # before anything runs, so that a typo costs no hour of work
    print(report.run(out, given))
    return EXIT_OK
