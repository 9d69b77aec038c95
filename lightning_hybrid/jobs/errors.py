"""Errors for people: a mistake in the settings or the data is printed as one message, not a traceback.

A mistake is an error the package raises on purpose about its input: a ValueError, a missing file or a
missing optional package, raised by lightning_hybrid's own code (Hydra's instantiation wraps it; the
wrapper is looked through); or a config entry whose target does not take the arguments given (Hydra's
"Error in call to target ...: TypeError(... unexpected keyword argument ...)"). Anything else is a bug
and raises as usual. HYDRA_FULL_ERROR=1 (Hydra's own switch) shows every traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.errors import InstantiationException

PACKAGE = Path(__file__).resolve().parent.parent
MISTAKES = (ValueError, FileNotFoundError, NotADirectoryError, ImportError)
EXIT_CODE = 2  # a usage error, as argparse exits

T = TypeVar("T")


def mistake_in(error: BaseException) -> BaseException | None:
    """The user's mistake behind `error` (itself or a cause), or None when it is not one."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MISTAKES) and _raised_by_package(error):
            return error
        if isinstance(error, InstantiationException) and _wrong_arguments(error.__cause__):
            return error
        error = error.__cause__ or error.__context__
    return None


def _wrong_arguments(cause: BaseException | None) -> bool:
    return isinstance(cause, TypeError) and "argument" in str(cause)


def _raised_by_package(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE)


def reported(run: Callable[[], T]) -> T:
    """run(), with a user's mistake printed as one line on stderr (and in the run log) and exit code 2."""
    try:
        return run()
    except Exception as error:
        mistake = mistake_in(error)
        if mistake is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = f"error: {mistake}"
        run_log = logging.getLogger("lightning_hybrid.config")  # the file only, once jobs/logs.py set it up
        if run_log.handlers:
            run_log.error(message)
        print(f"{message}\n(HYDRA_FULL_ERROR=1 shows the traceback.)", file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None
