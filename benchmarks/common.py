"""What the benchmark scripts share: argument types that refuse values they cannot use (argparse
then exits with status 2 and one line naming the option)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path



def _at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _at_least(text, 0)


def midi_program(text: str) -> int:
    """argparse type: a GM program 0-127."""
    value = non_negative_int(text)
    if value > 127:
        raise argparse.ArgumentTypeError(f"{value}: a GM program is 0 to 127")
    return value


def device(text: str) -> str:
    """argparse type: cpu, cuda or cuda:N."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: choose cpu, cuda or cuda:N")
    return text


def existing_file(text: str) -> Path:
    """argparse type: a path to a file that is there."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path
