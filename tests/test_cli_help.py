"""Every argument of every ``noiseveil`` command has help, and the help states its default
(issue: "`--help` text for every argument with its default").

A default that is a value (64, runs, ric-cifar10) is printed by the parser's formatter; an
option whose default is None must say in words what leaving it out means ("default: the model
each ciphertext's header names"). Flags (default False) and required options have no default
to state.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from noiseveil.app.cli import build_parser
from noiseveil.app.cli import subcommands as commands


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def has_stated_default(action: argparse.Action) -> bool:
    """An optional whose default is a value the formatter must print."""
    return bool(action.option_strings) and action.default not in (None, False, argparse.SUPPRESS)


def leaves_default_to_words(action: argparse.Action) -> bool:
    """An optional that may be left out and defaults to None: its help says what that means."""
    return bool(action.option_strings) and not action.required and action.default is None


@pytest.fixture(autouse=True)
def wide_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """One line per help text, so that a wrapped default (ric-\\ncifar10) cannot hide."""
    monkeypatch.setenv("COLUMNS", "1000")


PARSER = build_parser()
COMMANDS = commands(PARSER)


def action_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's block as ``--help`` prints it (invocation and expanded help), one line."""
    return " ".join(parser._get_formatter()._format_action(action).split())


def test_the_walk_sees_every_command() -> None:
    assert {"keygen", "encrypt", "classify", "decrypt", "evaluate", "demo", "models"} <= set(COMMANDS)
    assert {"train", "train-classifier", "report"} <= set(COMMANDS)
    assert {"serve", "cloud upload", "cloud fetch", "cloud token new"} <= set(COMMANDS)
    assert any(has_stated_default(a) for p in COMMANDS.values() for a in arguments(p))
    assert any(leaves_default_to_words(a) for p in COMMANDS.values() for a in arguments(p))


@pytest.mark.parametrize("name", ["", *sorted(COMMANDS)])
def test_every_argument_has_help_with_its_default(name: str) -> None:
    parser = build_parser()
    parser = commands(parser)[name] if name else parser
    page = " ".join(parser.format_help().split())
    for action in arguments(parser):
        what = f"noiseveil {name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help not in (None, argparse.SUPPRESS), f"{what}: no help"
        assert action.help.strip(), f"{what}: empty help"
        block = action_help(parser, action)
        if has_stated_default(action):
            value = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
            assert str(value) in page, f"{what}: default {value!r} not in --help"
            assert str(value) in block, f"{what}: default {value!r} not in its help: {block}"
        if leaves_default_to_words(action):
            assert "default" in action.help.lower(), f"{what}: help does not say what omitting it means"
        if has_stated_default(action) or leaves_default_to_words(action):
            assert block.lower().count("default") == 1, f"{what}: default stated more than once: {block}"


def test_defaults_follow_the_parser() -> None:
    """The printed defaults are the parser's, per command (classify batches 256, the others 64)."""
    assert "(default: 256)" in " ".join(COMMANDS["classify"].format_help().split())
    assert "(default: 64)" in " ".join(COMMANDS["encrypt"].format_help().split())
    assert "(default: None)" not in PARSER.format_help()
    for parser in COMMANDS.values():
        page = parser.format_help()
        assert "(default: None)" not in page and "(default: False)" not in page


def test_every_command_help_runs_in_a_fresh_process() -> None:
    """``python -m noiseveil.app.cli COMMAND --help``: exit 0, the usage, and its defaults."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def run(name: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "noiseveil.app.cli", name, "--help"]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    top = [name for name in COMMANDS if " " not in name]  # nested ones: parsed alike, above
    with ThreadPoolExecutor(max_workers=2) as pool:  # a shared 2-core machine: two at a time
        procs = dict(zip(top, pool.map(run, top), strict=True))
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.startswith(f"usage: noiseveil {name}"), proc.stdout[:80]
        if any(a.option_strings for a in arguments(COMMANDS[name])):  # 'models' has no option
            assert "default" in proc.stdout, (name, proc.stdout)


def test_help_and_argument_errors_import_no_torch() -> None:
    """``noiseveil --help`` (and a mistyped argument) answer without importing torch, which
    took seconds of every such answer (issue 27: "`noiseveil --help` takes 2.3-3 s: import
    lazily"; scripts/benchmark_cli_startup.py measures the time)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for argv in (["--help"], ["encrypt", "--help"], ["encrypt", "x", "--batch-size", "0"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "noiseveil.app.cli", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
        assert "noiseveil.app" in imported, proc.stderr[-500:]  # the check sees imports at all
        heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "numpy", "PIL", "fastapi"))
        assert heavy == [], (argv, heavy[:5])


def test_the_token_file_option_says_the_variable_holds_a_token_not_a_path() -> None:
    """--token-file's help said "default: $NOISEVEIL_TOKEN", which holds a token (issue 27)."""
    for name in ("cloud upload", "cloud list", "cloud fetch", "cloud token new"):
        (option,) = [a for a in arguments(COMMANDS[name]) if "--token-file" in a.option_strings]
        assert "default: $NOISEVEIL_TOKEN" not in option.help
        assert "the token in the NOISEVEIL_TOKEN variable (a token itself, not a path)" in option.help
