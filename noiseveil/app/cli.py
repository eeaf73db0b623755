"""noiseveil: privacy-preserving image classification with recoverable encryption.

Typical use (data provider, cloud, authorised user):

  noiseveil keygen my.key
  noiseveil encrypt photos/ -o cipher/ -k my.key -m ric-cifar10
  noiseveil classify cipher/ -m cifar10-resnet
  noiseveil decrypt cipher/ -o recovered/ -k my.key
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


def _add_batch(p: argparse.ArgumentParser, default: int = 64) -> None:
    p.add_argument(
        "--batch-size", type=positive_int, default=default, help="images per batch (memory stays flat)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_classifier_override(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--classifier",
        type=Path,
        metavar="TORCHSCRIPT",
        help="a TorchScript classifier (takes [0,1] NCHW images) to use instead of the "
        "scheme model's own cloud classifier",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noiseveil", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="write a new 256-bit secret key (mode 0600, never overwrites)")
    p.add_argument("path", type=Path)
    p.add_argument(
        "--model",
        help="make the key with this model's scheme; for a model trained for one key (EtC), write "
        "that model's PUBLIC demo key (no privacy)",
    )

    p = sub.add_parser("encrypt", help="encrypt an image file or a folder into ciphertext PNGs")
    p.add_argument("input", type=Path, help="image file or folder (searched recursively)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file or folder")
    p.add_argument("-k", "--key", type=Path, required=True, help="key file from 'noiseveil keygen'")
    p.add_argument("-m", "--model", default="ric-cifar10", help="scheme model id (see 'noiseveil models')")
    p.add_argument(
        "--no-key-id",
        action="store_true",
        help="leave the key's public fingerprint out of the headers (it lets an observer link files "
        "made with one key); a wrong key is then told by its failed tag",
    )
    p.add_argument("--nae-steps", type=non_negative_int, help="override the NAE attack's step count")
    _add_classifier_override(p)
    _add_batch(p)

    p = sub.add_parser("classify", help="classify images or ciphertexts with a cloud classifier")
    p.add_argument("input", type=Path, help="image file or folder")
    p.add_argument(
        "-m",
        "--model",
        help="classifier or scheme model id (a scheme model means its cloud classifier; see 'noiseveil "
        "models'); default: the model each ciphertext's header names (plain images need -m)",
    )
    _add_classifier_override(p)
    p.add_argument("--json", type=Path, help="also write the labels to this JSON file (new file)")
    _add_batch(p, 256)

    p = sub.add_parser("decrypt", help="decrypt ciphertext PNGs (file or folder) with the key")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("-k", "--key", type=Path, required=True)
    _add_classifier_override(p)
    _add_batch(p)

    p = sub.add_parser("evaluate", help="ACC_p, ACC_e, ADP, recovery PSNR/SSIM on a test set")
    p.add_argument("-m", "--model", default="ric-cifar10")
    p.add_argument("-d", "--dataset", help="dataset name (default: the model's own)")
    p.add_argument("-n", "--images", type=positive_int, default=500, help="test images (a fixed subset)")
    p.add_argument(
        "--out",
        type=Path,
        help="JSON file (default: results/evaluate/<model>-<dataset>.json under the current folder)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="encrypt, classify and decrypt sample images with every shipped model")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for files and the grid")
    p.add_argument("-n", "--images", type=positive_int, default=8, help="images per model")

    sub.add_parser("models", help="list the model zoo")

    p = sub.add_parser("train-classifier", help="train a zoo classifier on plaintext and ship it")
    p.add_argument("model_id")
    p.add_argument("--epochs", type=positive_int, help="override the card's epoch count")
    _add_shipping(p)
    p.add_argument("--checkpoint-dir", type=Path, default=Path("runs"), help="resumable checkpoints")

    p = sub.add_parser("train", help="train a zoo scheme model (RIC, EtC) and ship it")
    p.add_argument("model_id")
    p.add_argument("--steps", type=positive_int, help="override the card's step count (EtC: epochs)")
    p.add_argument("--key", type=Path, help="EtC: train for this key file (default: the public demo key)")
    p.add_argument(
        "--preset",
        choices=["fast", "paper", "masked"],
        help="RIC network preset (paper: paper's sizes, lr 1e-4; masked: residuals + keyed pad, λ 0.7)",
    )
    _add_shipping(p)
    p.add_argument("--checkpoint-dir", type=Path, default=Path("runs"), help="resumable checkpoints")

    p = sub.add_parser("report", help="regenerate a paper's tables into results/ (JSON, Markdown, figures)")
    p.add_argument(
        "paper", choices=["ric", "etc", "security"], help="RIC or EtC paper's tables, or RIC's security suite"
    )
    p.add_argument("--out", type=Path, help="output folder (default: results/<paper>)")
    p.add_argument(
        "--images",
        type=positive_int,
        help="test images (ric: 500; etc: 1000 for distances/attacks; security: 200)",
    )
    p.add_argument(
        "--steps", type=positive_int, help="training steps of every attack network (security: 500; etc: 1500)"
    )
    p.add_argument("--itn-pairs", type=positive_int, help="own-key pairs the ITN attacker makes (etc: 10000)")
    p.add_argument("--models", nargs="+", help="ric, security: RIC models (default: all shipped)")
    p.add_argument(
        "--ablation-steps", type=positive_int, help="ric: training steps of each Table 4 model (800)"
    )
    p.add_argument(
        "--sweep-steps", type=positive_int, help="ric: fine-tuning steps at each λ of the sweep (200)"
    )
    p.add_argument(
        "--stages",
        nargs="+",
        metavar="STAGE",
        help="ric: re-measure only these stages ('tables 1-3', 'table 4', 'lambda sweep', 'lossless'; "
        "default: all) and keep the others from the saved JSON",
    )
    p.add_argument("--render-only", action="store_true", help="rewrite report.md from the existing JSON")
    return parser


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
