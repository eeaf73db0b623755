"""noiseveil: privacy-preserving image classification with recoverable encryption.

Typical use (data provider, cloud, authorised user):

  noiseveil keygen my.key
  noiseveil encrypt photos/ -o cipher/ -k my.key -m ric-cifar10
  noiseveil classify cipher/ -m cifar10-resnet
  noiseveil decrypt cipher/ -o recovered/ -k my.key
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The --preset names of `model add` (noiseveil.classifiers.preprocessing.PRESETS), kept here so
# that building the parser imports no torch; tests/test_cli_help.py checks they match.
PRESET_NAMES = ("caffe", "imagenet", "inception")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (a batch of 0 or a negative count means nothing)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is too small (at least {low})")
    return value


class OutputPath(argparse.Action):
    """``-o``: the path, and whether it was written as a folder (``out/``), which a Path forgets."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, Path(values))
        namespace.output_is_folder = values.endswith(("/", os.sep))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and "(default: X)" after every option whose default is a
    value. A default of None or False is not printed: a flag's is off, and an option that
    defaults to None says in its own help what leaving it out means."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def _add_command(sub: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)


def _add_batch(p: argparse.ArgumentParser, default: int = 64) -> None:
    p.add_argument(
        "--batch-size", type=positive_int, default=default, help="images per batch (memory stays flat)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_distribution(p: argparse.ArgumentParser, resumable: bool = True) -> None:
    where = p.add_mutually_exclusive_group()  # where the batches run: one answer
    where.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the batches as Ray tasks on the Ray instance at ADDRESS, or on one started on this "
        "machine if no ADDRESS is given (default: one process, no Ray; needs 'pip install noiseveil[ray]')",
    )
    where.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        metavar="N",
        help="run the batches on N worker processes of this machine, each with an equal share of the "
        "compute threads: the same tasks as --ray, without Ray (each worker starts a fresh interpreter "
        "and loads the model: worth it where the work outlasts that, a large folder or slow images)",
    )
    p.add_argument(
        "--files-from",
        type=Path,
        metavar="LIST",
        help="only the files LIST names, one path per line relative to the input folder ('-': read "
        "standard input); outputs mirror those paths (default: every image in the input)",
    )
    if resumable:
        p.add_argument(
            "--skip-existing",
            action="store_true",
            help="leave outputs that exist alone and do only the rest (a rerun after an interruption; "
            "outputs are written atomically, so an existing one is complete)",
        )


def _add_classifier_override(p: argparse.ArgumentParser, use: str, default: str) -> None:
    p.add_argument(
        "--classifier",
        type=Path,
        metavar="TORCHSCRIPT",
        help=f"a TorchScript classifier (takes [0,1] NCHW images) {use} (default: {default})",
    )


def _add_shipping(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as", dest="save_as", metavar="ID", help="ship under this new id (default: the card's id)"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing model of that id (its old weights stay loadable as ID@SHA); "
        "without it, an existing id is refused before training starts",
    )


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command by its words ("encrypt", "cloud", "cloud token new"), nested ones included:
    what the help tests and the docs' CLI reference walk."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words = f"{prefix} {name}".strip()
                found[words] = sub
                found.update(subcommands(sub, words))
    return found


def _serve_batch_wait_ms() -> int:
    from noiseveil.app.service.settings import ServiceSettings  # a dataclass: nothing heavy

    return round(ServiceSettings.batch_wait * 1000)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noiseveil", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do; 'noiseveil COMMAND --help' tells more",
    )

    p = _add_command(sub, "keygen", "write a new key for a model's scheme (mode 0600, never overwrites)")
    p.add_argument("path", type=Path, help="key file to write (an existing file is never overwritten)")
    p.add_argument(
        "--model",
        default="ric-cifar10",
        help="make the kind of key this scheme model takes (see 'noiseveil models'): 256 random bits "
        "(RIC, EtC) or a trained generator (AVP: minutes of CPU, resumable)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="write the model's PUBLIC demo key instead (EtC: the key its cloud model was trained for; "
        "AVP: the generator shipped with it): for demos and tests, no privacy",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        help="training steps of a trained key (AVP; default: the model's own; ignored for random keys)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar while a key trains")

    p = _add_command(sub, "encrypt", "encrypt an image file or a folder into ciphertext PNGs")
    p.add_argument("input", type=Path, help="image file or folder (searched recursively)")
    p.add_argument(
        "-o",
        "--output",
        action=OutputPath,
        required=True,
        help="output folder (mirrors the input's tree), or for one file its output file; a trailing "
        "slash or an existing folder means a folder (out/ holds out/NAME.png)",
    )
    p.add_argument(
        "-k",
        "--key",
        type=Path,
        help="key file from 'noiseveil keygen' (default: none; only keyless models, TransNet's, take none)",
    )
    p.add_argument("-m", "--model", default="ric-cifar10", help="scheme model id (see 'noiseveil models')")
    p.add_argument(
        "--no-key-id",
        action="store_true",
        help="leave the key's public fingerprint out of the headers (it lets an observer link files "
        "made with one key); a wrong key is then told by its failed tag",
    )
    p.add_argument(
        "--nae-steps",
        type=non_negative_int,
        help="override the NAE attack's step count (RIC models only); default: the model's own setting",
    )
    p.add_argument(
        "--cold-start",
        action="store_true",
        help="start every image's NAE from its own keyed random start (RIC's lossless models): several "
        "times the attack's work, but ciphertexts of one label no longer share high parts, which lets "
        "whoever holds two tell whether their labels are equal",
    )
    _add_classifier_override(p, "to use instead of the scheme model's cloud classifier", "the model's own")
    _add_batch(p)
    _add_distribution(p)

    p = _add_command(sub, "classify", "classify images or ciphertexts with a cloud classifier")
    p.add_argument("input", type=Path, help="image file or folder")
    p.add_argument(
        "-m",
        "--model",
        help="classifier or scheme model id (a scheme model means its cloud classifier; see 'noiseveil "
        "models'); default: the model each ciphertext's header names (plain images need -m)",
    )
    _add_classifier_override(
        p, "to classify with instead of a zoo model (-m is then ignored)", "none, a zoo model as -m says"
    )
    p.add_argument(
        "--json",
        type=Path,
        help="also write the labels to this JSON file (new file); default: none, labels go to stdout only",
    )
    _add_batch(p, 256)
    _add_distribution(p, resumable=False)

    p = _add_command(sub, "decrypt", "decrypt ciphertext PNGs (file or folder) with the key")
    p.add_argument("input", type=Path, help="ciphertext PNG file or folder (searched recursively)")
    p.add_argument(
        "-o",
        "--output",
        action=OutputPath,
        required=True,
        help="output folder for the recovered images, or for one file its output file; a trailing "
        "slash or an existing folder means a folder",
    )
    p.add_argument(
        "-k",
        "--key",
        type=Path,
        help="the key file the images were encrypted with (default: none, for keyless models, whose "
        "images do not decrypt)",
    )
    _add_classifier_override(
        p,
        "that the ciphertexts were encrypted against (encrypt --classifier)",
        "the cloud classifier of the model each ciphertext's header names",
    )
    _add_batch(p)
    _add_distribution(p)

    p = _add_command(sub, "evaluate", "ACC_p, ACC_e, ADP, recovery PSNR/SSIM on a test set")
    p.add_argument("-m", "--model", default="ric-cifar10", help="scheme model id (see 'noiseveil models')")
    p.add_argument("-d", "--dataset", help="dataset name (default: the one the model was trained on)")
    p.add_argument(
        "--photos",
        type=Path,
        metavar="DIR",
        help="evaluate on these photos of any sizes instead (models for photos; no ground truth: label "
        "agreement, not accuracy); default for such a model: the photos scikit-image and matplotlib ship",
    )
    p.add_argument(
        "-n",
        "--images",
        type=positive_int,
        default=500,
        help="test images (a fixed subset of the test split)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="JSON file (default: results/evaluate/<model>-<dataset>.json under the current folder)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = _add_command(sub, "demo", "encrypt, classify and decrypt sample images with every shipped model")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        help="folder for files and the grid (each run in a new timestamped subfolder)",
    )
    p.add_argument("-n", "--images", type=positive_int, default=8, help="images per model")

    _add_command(sub, "models", "list the model zoo")
    _add_model_commands(sub)

    p = _add_command(sub, "train-classifier", "train a zoo classifier on plaintext and ship it")
    p.add_argument("model_id", help="the zoo classifier card to train (e.g. cifar10-resnet)")
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the card's epoch count)")
    p.add_argument(
        "--stop-after",
        type=positive_int,
        metavar="EPOCHS",
        help="end this run after that many more epochs, keeping the checkpoint: the same command "
        "continues, and the model ships after its last epoch (default: train to the end)",
    )
    _add_shipping(p)
    p.add_argument(
        "--checkpoint-dir", type=Path, default=Path("runs"), help="folder for resumable checkpoints"
    )

    p = _add_command(sub, "train", "train a zoo scheme model (RIC, EtC, AVP, TransNet) and ship it")
    p.add_argument("model_id", help="the zoo scheme model card to train (e.g. ric-cifar10-masked)")
    p.add_argument(
        "--steps", type=positive_int, help="training steps, EtC: epochs (default: the card's count)"
    )
    p.add_argument(
        "--key", type=Path, help="EtC: train for this key file (default: the model's public demo key)"
    )
    p.add_argument(
        "--preset",
        choices=["fast", "paper", "masked"],
        help="RIC network preset (paper: paper's sizes, lr 1e-4; masked: residuals + keyed pad, λ 0.7); "
        "default: the card's own preset",
    )
    p.add_argument(
        "--cloud",
        metavar="URL",
        help="TransNet: train with the cloud's protocol server at URL (`python -m "
        "noiseveil.app.protocol_server`, or `noiseveil serve` at URL/v1/protocol/CLASSIFIER with a "
        "provider token in $NOISEVEIL_TOKEN), so its classifier never enters this process "
        "(default: an in-process cloud with the card's classifier)",
    )
    _add_shipping(p)
    p.add_argument(
        "--checkpoint-dir", type=Path, default=Path("runs"), help="folder for resumable checkpoints"
    )

    p = _add_command(sub, "report", "regenerate a paper's tables into results/ (JSON, Markdown, figures)")
    p.add_argument(
        "paper",
        choices=["ric", "etc", "avp", "avp-sweep", "transnet", "security"],
        help="the RIC, EtC, AVP or TransNet paper's tables, or the security suite of "
        "unmodified-classifier schemes",
    )
    p.add_argument("--out", type=Path, help="output folder (default: results/<paper> of the checkout)")
    p.add_argument(
        "--images",
        type=positive_int,
        help="test images (default: ric 500; etc 1000 for distances and attacks; security 200; avp 64 "
        "faces; transnet 2000)",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        help="etc, security, avp, transnet: training steps of every attack network "
        "(default: etc 1500; security 500; avp 600; transnet 1500)",
    )
    p.add_argument(
        "--itn-pairs",
        type=positive_int,
        help="etc, security, transnet: pairs the ITN attacker makes; avp: the attack model's key-1 "
        "pairs (default: etc 10000; security 2000; avp 256; transnet 5000)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        help="ric, security: report on these RIC models only (default: every shipped one; ric: those "
        "of the learned presets, the lossless ones come with the 'lossless' stage)",
    )
    p.add_argument(
        "--ablation-steps",
        type=positive_int,
        help="ric: training steps of each Table 4 model (default: 800)",
    )
    p.add_argument(
        "--sweep-steps",
        type=positive_int,
        help="ric: fine-tuning steps at each λ of the sweep (default: 200)",
    )
    p.add_argument(
        "--stages",
        nargs="+",
        metavar="STAGE",
        help="ric, avp: re-measure only these stages and keep the others from the saved JSON "
        "(ric: 'tables 1-3', 'table 4', 'lambda sweep', 'lossless'; avp: 'table 1 and fig. 9', "
        "'table 2', 'tables 4-5', 'fig. 7', 'security'; default: all)",
    )
    p.add_argument(
        "--networks",
        type=positive_int,
        help="transnet: train (or reuse) at most this many of the sweep's networks (one per cloud "
        "and α), then report what is finished (default: all; the sweep spans sessions, each "
        "network is kept in runs/)",
    )
    p.add_argument(
        "--points",
        type=non_negative_int,
        help="avp-sweep: measure at most this many new points, then report every point kept so "
        "far (0: measure none; default: all; each point is kept in runs/, so the sweep spans sessions)",
    )
    p.add_argument(
        "--budget",
        choices=["ci", "default", "paper"],
        metavar="PRESET",
        help="a preset of everything the report may spend, which it names as it starts: ci (minutes, "
        "to show it runs), paper (the paper's sizes, CPU-hours over sessions) or the one results/ "
        "was made with (the default)",
    )
    p.add_argument("--render-only", action="store_true", help="rewrite report.md from the existing JSON")
    _add_service_commands(sub)
    return parser


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    """`model add`: the user's own classifier into the user's zoo, with lossless RIC on it."""
    p = _add_command(sub, "model", "add your own classifier to your zoo (lossless RIC protects it at once)")
    msub = p.add_subparsers(dest="model_action", required=True, metavar="ACTION", help="add")
    q = _add_command(
        msub,
        "add",
        "import a TorchScript or ONNX classifier with its labels and input pipeline, and make the lossless "
        "RIC model ric-ID on it ($NOISEVEIL_WEIGHTS, else ~/.local/share/noiseveil/models; never overwrites)",
    )
    q.add_argument("id", help="the classifier's id in your zoo (RIC's model on it is ric-ID)")
    q.add_argument(
        "--classifier",
        type=Path,
        required=True,
        metavar="FILE",
        help="a TorchScript (.pt) or ONNX (.onnx) file",
    )
    q.add_argument(
        "--labels", type=Path, required=True, help="class names, one per line in the network's output order"
    )
    q.add_argument(
        "--preset",
        choices=sorted(PRESET_NAMES),
        help="a named input pipeline (imagenet: resize 256, crop 224, torchvision's mean/std; inception: "
        "299, [-1, 1]; caffe: 227, BGR 0-255 minus the mean); the options below override it (default: none)",
    )
    q.add_argument(
        "--input-size",
        type=positive_int,
        nargs="+",
        metavar="N",
        help="the network's input: N, or H W (default: the preset's)",
    )
    q.add_argument(
        "--resize", type=positive_int, help="shorter side resized to this first (default: the crop's side)"
    )
    q.add_argument(
        "--crop",
        choices=["center", "none"],
        help="centre crop after the resize, or squash to the input size (default: center)",
    )
    q.add_argument(
        "--mean",
        type=float,
        nargs="+",
        help="per channel, in [0, 1] units and the network's channel order (default: the preset's, else 0)",
    )
    q.add_argument(
        "--std",
        type=float,
        nargs="+",
        help="per channel, in [0, 1] units, Caffe's: 1/255 (default: the preset's, else 1)",
    )
    q.add_argument(
        "--channel-order",
        choices=["RGB", "BGR"],
        help="what the network takes (default: the preset's, else RGB)",
    )
    q.add_argument("--channels", type=int, choices=[1, 3], help="grey or colour network (default: 3)")
    q.add_argument("--interpolation", choices=["bilinear", "bicubic"], help="resizing (default: bilinear)")
    q.add_argument(
        "--calibrate",
        type=Path,
        metavar="SAMPLE_DIR",
        help="measure RIC's digit split on these sample photos: the smallest that every one fits bit-exactly "
        "(default: 6 bits, unmeasured)",
    )
    q.add_argument(
        "--digit-bits",
        type=int,
        choices=range(1, 8),
        help="set the digit split instead, 1-7 (default: measured with --calibrate, else 6)",
    )


def _add_service_commands(sub: argparse._SubParsersAction) -> None:
    """`serve` (the cloud) and `cloud ...` (its clients)."""
    p = _add_command(sub, "serve", "run the cloud service: store, classify and serve ciphertexts (HTTP API)")
    p.add_argument("--data-dir", type=Path, default=Path("noiseveil-cloud"), help="files and SQLite database")
    p.add_argument(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://USER:PASSWORD@HOST/DB "
        "(default: $NOISEVEIL_DATABASE_URL, else SQLite in --data-dir)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="ID",
        help="scheme models served (default: every one of the shipped zoo and yours)",
    )
    p.add_argument(
        "--protocol-classifiers",
        nargs="+",
        metavar="ID",
        help="classifiers offered for TransNet's training protocol at /v1/protocol/ID "
        "(default: the classifiers of the served TransNet models)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=positive_int, default=8000, help="port")
    p.add_argument(
        "--max-upload-bytes",
        type=positive_int,
        default=64 << 20,
        help="largest upload accepted (a 12-megapixel RGB ciphertext is 36 MB)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes on one port, each with its own models (one per core serves the "
        "most uploads: docs/guides/cloud.md)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=non_negative_int,
        default=_serve_batch_wait_ms(),
        help="milliseconds the first of concurrent uploads waits for others to share its forward "
        "pass and its commit (0: only those already queued)",
    )

    p = _add_command(sub, "cloud", "talk to a noiseveil cloud: upload, list, fetch and decrypt, tokens")
    csub = p.add_subparsers(
        dest="cloud_command",
        required=True,
        metavar="ACTION",
        help="'noiseveil cloud ACTION --help' tells more",
    )

    def connection(q: argparse.ArgumentParser) -> argparse.ArgumentParser:
        q.add_argument(
            "--url", help="the cloud's address (default: $NOISEVEIL_URL, else http://127.0.0.1:8000)"
        )
        q.add_argument(
            "--token-file",
            type=Path,
            help="file holding the API token; default: the token in the NOISEVEIL_TOKEN variable "
            "(a token itself, not a path); never the token on the command line",
        )
        return q

    def client(name: str, summary: str) -> argparse.ArgumentParser:
        return connection(_add_command(csub, name, summary))

    def selection(q: argparse.ArgumentParser) -> None:
        q.add_argument("--label", type=int, help="only this label (default: all)")
        q.add_argument("--model", help="only this model id (default: all)")
        q.add_argument(
            "--since",
            help="only uploaded at or after this ISO time, e.g. 2026-12-01T00:00Z (default: any time)",
        )
        q.add_argument("--until", help="only uploaded before this ISO time (default: up to now)")
        q.add_argument(
            "--id",
            type=positive_int,
            nargs="+",
            help="these image ids (default: every image the filters match)",
        )

    q = client("upload", "encrypt locally (with -m) and upload a file or folder (provider token)")
    q.add_argument("input", type=Path, help="plaintext images (with -m), or ciphertext PNGs (without)")
    q.add_argument(
        "-m",
        "--model",
        help="encrypt with this scheme model first, see 'noiseveil models' "
        "(default: none, INPUT holds ciphertexts already)",
    )
    q.add_argument(
        "-k", "--key", type=Path, help="key file, with -m (default: none; only keyless models take none)"
    )
    q.add_argument(
        "--ciphertexts",
        type=Path,
        help="where -m keeps the ciphertexts it uploads (default: INPUT-ciphertexts beside INPUT); "
        "a rerun encrypts only what is missing there and uploads only what the cloud lacks",
    )
    q.add_argument(
        "--send-names",
        action="store_true",
        help="also send each ciphertext's path inside the folder (the plaintext's, as .png), which the "
        "cloud stores and 'cloud fetch' names files by; off, the cloud learns no names (they can tell "
        "what the pixels hide: LFW's are the people's names) and fetch writes ID.png",
    )
    _add_batch(q)

    q = client("list", "list stored ciphertexts, or count them per label (user or admin token)")
    selection(q)
    q.add_argument("--counts", action="store_true", help="counts per model and label instead")
    q.add_argument("--json", action="store_true", help="rows as JSON")

    q = client("fetch", "download ciphertexts, and decrypt them locally with --decrypt (user or admin token)")
    selection(q)
    q.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="folder for the files, named as uploaded with --send-names, else ID.png (never overwritten)",
    )
    q.add_argument("--decrypt", action="store_true", help="write the decrypted images instead (needs -k)")
    q.add_argument(
        "-k", "--key", type=Path, help="key file, for --decrypt; it stays on this machine (default: none)"
    )
    _add_batch(q)

    q = _add_command(csub, "token", "make, list or revoke API tokens (admin token)")
    tsub = q.add_subparsers(
        dest="token_action", required=True, metavar="TOKEN_ACTION", help="new, list or revoke"
    )
    t = connection(_add_command(tsub, "new", "a new token, printed once (to standard output)"))
    t.add_argument("--role", required=True, choices=["provider", "user", "admin"], help="what it may do")
    t.add_argument("--name", required=True, help="who holds it")
    connection(_add_command(tsub, "list", "tokens, without their secrets"))
    t = connection(_add_command(tsub, "revoke", "revoke a token"))
    t.add_argument("token_id", type=positive_int, help="the token's id (see 'cloud token list')")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from noiseveil.app import commands
    from noiseveil.app.exit_codes import EXIT_ERROR
    from noiseveil.exceptions import NoiseveilError

    try:
        return getattr(commands, "cmd_" + args.command.replace("-", "_"))(args)
    except NoiseveilError as err:
        print(f"noiseveil {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"noiseveil {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
