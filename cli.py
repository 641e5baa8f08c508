"""What the project's command lines share: the error that ends a command in one line,
the wrapper that turns it into an exit status, argument types, the ``--data-dir``
flag, the output-folder check and the help formatter.

Every module's own error (``dataset.DataError``, ``checkpoints.CheckpointError``, ...)
is a ``CommandError``, so each entry point (dcgan.py, evaluate.py, dataset.py) reports
them all the same way: ``error: <what is wrong and the fix>`` on stderr, no traceback,
exit status 2 (3 for a diverged run). This module knows nothing of GANs or data.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


class CommandError(Exception):
    """Ends a command with ``error: <message>`` and exit status ``exit_code``."""

    exit_code = 2


class UsageError(CommandError):
    """A bad argument or checkpoint; the message names it and the fix."""


def run(command: Callable[[], int], interrupted: str | None = None) -> int:
    """``command()``'s exit status, with a CommandError as one line and its code.
    ``interrupted``, when given, is printed on Ctrl-C (exit 130) instead of a traceback."""
    try:
        return command()
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"\n{interrupted}", file=sys.stderr)
        return 130


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of an entry point: its parser, what runs it, and what Ctrl-C says."""

    parser: Callable[[], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace], int]
    interrupted: str | None = None


def main(argv: list[str] | None, default: Command, subcommands: dict[str, Command]) -> int:
    """An entry point's exit status: the subcommand named first in ``argv`` (or the
    default command) parses the rest and runs under ``run``."""
    argv = sys.argv[1:] if argv is None else argv
    command = subcommands.get(argv[0]) if argv else None
    if command is None:
        command = default
    else:
        argv = argv[1:]
    args = command.parser().parse_args(argv)
    return run(lambda: command.run(args), command.interrupted)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default shown in ``--help``, except a flag whose default is None:
    its help says what leaving it out means, and "(default: None)" would only confuse."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def parser(prog: str | None, description: str, **kwargs) -> argparse.ArgumentParser:
    """An argument parser with the shared help formatter."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter, **kwargs
    )


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="CelebA root (default: data/celeba, else synthetic)")


# ------------------------------------------------------------------ argument types


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _not_negative(value: float) -> float:
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def non_negative_int(text: str) -> int:
    return _not_negative(_whole(text))


def at_least_2(text: str) -> int:
    value = _whole(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 2")
    return value


def multiple_of_8(text: str) -> int:
    value = positive_int(text)
    if value % 8:
        raise argparse.ArgumentTypeError(
            f"{value} is not a multiple of 8 (the discriminator compares groups of 4 images)"
        )
    return value


def up_to(high: int, check: Callable[[str], int] = positive_int) -> Callable[[str], int]:
    """``check``, and no larger than ``high``: a count, size or width past what memory
    (or the file format) allows is refused here, not by a traceback later."""

    def parse(text: str) -> int:
        value = check(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{value} is more than {high}; give at most {high}")
        return value

    parse.__name__ = check.__name__
    return parse


def attribute_source(text: str) -> Path | str:
    """``none`` (train without attributes), or ``classifier:PATH`` -> PATH, the
    attribute classifier that labels photos."""
    if text == "none":
        return text
    kind, _, path = text.partition(":")
    if kind != "classifier" or not path:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give none, or classifier:PATH with PATH an attribute classifier "
            ".keras (python evaluate.py train-classifier makes one)"
        )
    return Path(path)


def devices(text: str) -> int | str:
    """A device count, or ``all``."""
    if text == "all":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device count; give 1, 2, ... or all"
        ) from None


def address(text: str) -> str:
    """host:port."""
    host, _, number = text.rpartition(":")
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port (e.g. 10.0.0.1:1234)")
    port(number)
    return text


SEED_LIMIT = 2**32  # what numpy's and Keras' generators take


def port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port; give 0 to 65535")
    return value


def seed(text: str) -> int:
    value = _whole(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"{value} is not a seed; give a whole number from 0 to {SEED_LIMIT - 1}"
        )
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    return _not_negative(_number(text))


def probability(text: str) -> float:
    """A probability in (0, 1]."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]; give above 0, up to 1")
    return value


def below_one(text: str) -> float:
    """A number in [0, 1), such as Adam's beta1."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1); give 0 or more, below 1")
    return value


# ------------------------------------------------------------------------- output


def writable_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove a file can be written there, before any work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(
            f"{flag} {path}: cannot write there ({error.strerror or error}); choose another folder"
        ) from None
    return path
