"""The ``noiseveil`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noiseveil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-classifier", help="train a zoo classifier on plaintext and ship it")
    p.add_argument("model_id")
    p.add_argument("--epochs", type=int, default=None, help="override the card's epoch count")
    p.add_argument("--checkpoint-dir", type=Path, default=Path("runs"), help="resumable checkpoints")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train-classifier":
        from noiseveil.commands_train import train_classifier_command

        train_classifier_command(args.model_id, args.epochs, args.checkpoint_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
