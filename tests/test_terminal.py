"""The terminal of a long run: one line per stage; library logs, warnings and tqdm bars go to the log file."""

from __future__ import annotations

import io
import logging
import sys
import warnings

from tqdm import tqdm

from sense_hub.terminal import Terminal, capture_to_log, run_log_path


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """What Python does with a warning outside pytest (pytest records them instead): write it to `sys.stderr`."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_library_noise_goes_to_the_log_and_sense_hub_warnings_to_both(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", _print_warning)
    library = logging.getLogger("some_library")  # like transformers: its own stderr handler, no propagation
    handler = logging.StreamHandler(sys.stderr)
    monkeypatch.setattr(library, "handlers", [handler])
    monkeypatch.setattr(library, "propagate", False)
    log_path = tmp_path / "run" / "job.log"
    with capture_to_log(log_path) as terminal:
        with terminal.stage("[1/2] weak"):
            warnings.warn("`x` is deprecated", FutureWarning, stacklevel=1)
            library.warning("library advice")
            for _ in tqdm(range(3), desc="Tokenizing"):
                pass
            logging.getLogger("sense_hub.sampling").warning("a record was skipped")
            logging.getLogger("sense_hub.training").info("step 1: {'loss': 1.0}")
            late = logging.StreamHandler(sys.stderr)  # a library configured while the capture is on
            logging.getLogger("late_library").addHandler(late)
        terminal.line("table")
    err = capsys.readouterr().err
    assert err.splitlines() == ["[1/2] weak", "WARNING sense_hub.sampling: a record was skipped", "table"]
    log = log_path.read_text(encoding="utf-8")
    for text in ("FutureWarning: `x` is deprecated", "library advice", "Tokenizing", "3/3", "a record was skipped"):
        assert text in log, text
    assert "sense_hub.training: step 1: {'loss': 1.0}" in log
    # everything is put back: stderr, the library's handler, and the handler made during the run
    assert sys.stderr is not None and handler.stream is sys.stderr and late.stream is sys.stderr
    logging.getLogger("late_library").removeHandler(late)
    library.warning("after")
    assert "after" in capsys.readouterr().err


def test_a_run_that_wrote_nothing_leaves_no_log(tmp_path):
    log_path = tmp_path / "new" / "job.log"
    try:
        with capture_to_log(log_path):
            raise ValueError("bad input")
    except ValueError:
        pass
    assert not log_path.exists() and not log_path.parent.exists()


def test_a_live_stage_line_shows_the_outer_bar_and_ends_with_its_time(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    terminal = Terminal(stream)
    import time

    with terminal.stage("[7/12] sft"):
        with tqdm(total=4, desc="step", file=io.StringIO()) as bar:
            bar.update(2)
            time.sleep(1.2)
    text = stream.getvalue()
    assert "[7/12] sft  step 2/4" in text
    assert text.endswith("\n") and "[7/12] sft  done in " in text.splitlines()[-1].split("\r")[-1]


def test_run_log_path_names_other_ranks(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert run_log_path(tmp_path, "sft") == tmp_path / "sft.log"
    monkeypatch.setenv("RANK", "3")
    assert run_log_path(tmp_path, "sft") == tmp_path / "sft.rank3.log"
