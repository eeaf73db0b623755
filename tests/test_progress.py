"""Progress where stderr is not a terminal (a log, a pipe): plain lines, no carriage returns
(issue 27: "tqdm writes carriage-return frames into redirected logs")."""

from __future__ import annotations

import io

from noiseveil import progress as progress_module
from noiseveil.progress import PlainProgress, heartbeat, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_plain_line_per_tenth_and_one_at_the_end(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    log = io.StringIO()
    with progress_bar(total=100, desc="encrypt", unit="img", file=log) as bar:
        assert isinstance(bar, PlainProgress)
        for _ in range(100):
            clock[0] += 0.5  # 50 s in all: a line per tenth (every 5 s), none in between
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "encrypt: 10/100 img (10%), 5.0 s"
    assert len(lines) == 11 and lines[-1] == "encrypt: 100/100 img (100%), 50.0 s"  # ten tenths and the close


def test_lines_come_at_most_every_second_and_at_least_every_ten(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    log = io.StringIO()
    fast = progress_bar(range(1000), desc="fast", file=log)
    assert list(fast) == list(range(1000))  # iterating gives the items, and closes
    assert log.getvalue().splitlines() == ["fast: 1000/1000 it (100%), 0.0 s"]  # no time passed: one line
    log = io.StringIO()
    slow = progress_bar(total=None, desc="slow", unit="step", file=log)
    for _ in range(3):
        clock[0] += 10
        slow.update(1)
    slow.set_postfix(l1="0.1234")
    slow.close()
    slow.close()
    assert log.getvalue().splitlines() == [
        "slow: 1 step, 10.0 s",
        "slow: 2 step, 20.0 s",
        "slow: 3 step, 30.0 s",
        "slow: 3 step, 30.0 s, l1=0.1234",
    ]


def test_a_terminal_keeps_the_bar_and_disabled_prints_nothing() -> None:
    terminal = Terminal()
    bar = progress_bar(total=3, desc="encrypt", file=terminal)
    assert not isinstance(bar, PlainProgress)  # tqdm's
    bar.update(3)
    bar.close()
    assert "\r" in terminal.getvalue()
    quiet = io.StringIO()
    bar = progress_bar(total=3, desc="encrypt", disable=True, file=quiet)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""


def test_a_step_with_nothing_to_count_still_says_it_is_alive() -> None:
    """The demo's AVP encryption of 8 images ran 160 s on a busy machine without a line."""
    import time

    log = io.StringIO()
    with heartbeat("demo: avp-lfw: encrypting 8 images", every=0.05, file=log):
        time.sleep(0.3)
    lines = log.getvalue().splitlines()
    assert lines[0] == "demo: avp-lfw: encrypting 8 images ..."
    assert len(lines) >= 3 and all(
        line.startswith("demo: avp-lfw: encrypting 8 images: still at it (") for line in lines[1:]
    )
    count = len(lines)
    time.sleep(0.2)
    assert len(log.getvalue().splitlines()) == count  # and it stops with the step
