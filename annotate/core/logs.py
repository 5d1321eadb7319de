"""A rule's log file: where a stage's printed output and progress bars go under Snakemake."""
from __future__ import annotations

import contextlib
import traceback
from pathlib import Path


@contextlib.contextmanager
def logged(log_path: str | Path):
    """Send stdout and stderr (progress bars included) to ``log_path``.

    On an exception the traceback is written to the log before it propagates, so a failed
    rule's log says why.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        except BaseException:
            traceback.print_exc(file=log)
            raise
