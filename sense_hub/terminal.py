"""What a long run shows on the terminal: one line per stage. Everything else goes to a log file.

A quickstart or a `sense-hub sample` run touches datasets, TRL and transformers, which print FutureWarnings, a
tqdm bar for every `Dataset.map`, a dict of metrics per training step and a bar per model save. Inside
`capture_to_log(path)`:

- `sys.stderr` is the log file, so library warnings and every tqdm bar (ours and the libraries') are written there;
- log records of every logger go to the log file (INFO and above), and sense-hub's own warnings also to the terminal;
- `Terminal.stage(label)` prints one line for the stage. On an interactive terminal that line is updated in place
  with the outermost running tqdm bar (`sampling 12/32`, `step 3/12`) and the elapsed time, and ends with
  `done in 12.3 s`.

The terminal stream is the `sys.stderr` found on entry; everything is restored on exit, and an empty log file is
removed (a run that stopped on bad input leaves nothing behind).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["Terminal", "capture_to_log", "run_log_path"]

_CLEAR = "\r\x1b[2K"


class Terminal:
    """The real terminal stream while a log capture is active: stage lines, plain lines, the summary table."""

    def __init__(self, stream: TextIO, *, log_path: Path | None = None):
        self.stream = stream
        self.log_path = log_path
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty())

    def line(self, text: str) -> None:
        """Print one line on the terminal."""
        self.stream.write(text + "\n")
        self.stream.flush()

    @contextmanager
    def stage(self, label: str, *, live_only: bool = False) -> Iterator[None]:
        """One line for a stage: printed when it starts; on a terminal, kept up to date and ended with its time.

        Args:
            label: the stage's name as shown (`[3/12] weak`).
            live_only: print nothing when the stream is not a terminal (a command whose output is its result).
        """
        start = time.perf_counter()
        if not self.live:
            if not live_only:
                self.line(label)
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0.5):
                progress = _active_bar()
                text = f"{label}  {progress + '  ' if progress else ''}{time.perf_counter() - start:.0f} s"
                self.stream.write(_CLEAR + text)
                self.stream.flush()

        ticker = threading.Thread(target=tick, name="sense-hub-stage-line", daemon=True)
        self.stream.write(label)
        self.stream.flush()
        ticker.start()
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            stop.set()
            ticker.join()
            self.stream.write(f"{_CLEAR}{label}  {outcome} in {time.perf_counter() - start:.1f} s\n")
            self.stream.flush()


def is_main_process() -> bool:
    """Whether this is the first process of a distributed run (`RANK` unset or 0): the one that talks to the user."""
    return os.environ.get("RANK", "0") in ("", "0")


def run_log_path(output_dir: str | Path, name: str) -> Path:
    """`<output_dir>/<name>.log`; other processes of a distributed run (`RANK` > 0) get `<name>.rank<N>.log`."""
    rank = os.environ.get("RANK", "0")
    return Path(output_dir) / (f"{name}.log" if is_main_process() else f"{name}.rank{rank}.log")


def _active_bar() -> str:
    """`desc n/total` of the outermost tqdm bar still open (tqdm keeps them in `tqdm._instances`), or ""."""
    module = sys.modules.get("tqdm")
    if module is None:
        return ""
    try:
        bars = [bar for bar in list(module.tqdm._instances) if not bar.disable]
    except (AttributeError, RuntimeError):  # tqdm without its registry, or the set changed while being copied
        return ""
    if not bars:
        return ""
    bar = min(bars, key=lambda b: getattr(b, "start_t", 0.0))
    desc = (bar.desc or "").rstrip(": ")
    count = f"{bar.n}/{bar.total}" if bar.total else str(bar.n)
    return f"{desc} {count}".strip()


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    return [
        h
        for lg in loggers
        for h in lg.handlers
        if type(h) is logging.StreamHandler  # not FileHandler, not pytest's capture handlers
    ]


@contextmanager
def capture_to_log(log_path: str | Path) -> Iterator[Terminal]:
    """Send warnings, library logs and tqdm bars to `log_path` (appended) and yield the `Terminal` for stage lines.

    Args:
        log_path: the log file, usually in the run's output folder; its folder is created.

    Yields:
        The terminal (the `sys.stderr` of the caller) for stage lines and results.
    """
    log_path = Path(log_path)
    created = not log_path.parent.exists()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("a", encoding="utf-8", errors="replace", buffering=1)
    # the other processes of a distributed run keep their stage lines in their own log: one voice on the terminal
    terminal_stream = sys.stderr if is_main_process() else log
    root = logging.getLogger()
    saved_level = root.level
    console_level = saved_level or logging.WARNING
    # handlers that print to the terminal now (`logging.basicConfig`'s, transformers' own) write to the log instead
    swapped = [(h, h.stream) for h in _stream_handlers() if h.stream in (terminal_stream, sys.__stderr__)]
    for handler, _ in swapped:
        handler.setStream(log)
    to_log = logging.StreamHandler(log)
    to_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_log.setLevel(min(console_level, logging.INFO))
    to_terminal = logging.StreamHandler(terminal_stream)
    to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    to_terminal.setLevel(console_level)
    to_terminal.addFilter(lambda record: record.name.split(".")[0] == "sense_hub")
    root_swapped = [h for h, _ in swapped if h in root.handlers]
    for handler in root_swapped:  # the log gets every record once, from `to_log`
        root.removeHandler(handler)
    root.addHandler(to_log)
    root.addHandler(to_terminal)
    root.setLevel(min(console_level, logging.INFO))
    sys.stderr = log
    try:
        yield Terminal(terminal_stream, log_path=log_path)
    finally:
        sys.stderr = terminal_stream
        root.removeHandler(to_log)
        root.removeHandler(to_terminal)
        for handler in root_swapped:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for handler, stream in swapped:
            handler.setStream(stream)
        for handler in _stream_handlers():  # made during the run (a library imported then): back to the terminal
            if handler.stream is log:
                handler.setStream(terminal_stream)
        log.close()
        if log_path.stat().st_size == 0:
            log_path.unlink()
            if created and not any(log_path.parent.iterdir()):
                log_path.parent.rmdir()
