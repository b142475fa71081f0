"""What the commands share: list options, checking an output's folder.

Every option that takes several values uses `ListOption`, so ``--x a b``,
``--x a --x b`` and a mix of both all give ``[a, b]``. argparse's own
``nargs="+"`` keeps only the last use, and its ``"extend"`` adds to the
default instead of replacing it.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from gridshare.errors import UserError


class OptionError(UserError):
    """Options that do not go together, or a value out of range: one line, exit 2."""


class ListOption(argparse.Action):
    """``nargs="+"`` (or ``"*"``) whose uses add up; the first use replaces the default."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, nargs: str = "+", **kwargs: Any
    ) -> None:
        if nargs not in ("+", "*"):
            raise ValueError(f"a list option takes nargs '+' or '*', not {nargs!r}")
        if not option_strings:
            raise ValueError("a list option must be optional (positionals cannot repeat)")
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, self.dest, None)
        # argparse puts the default object itself in the namespace before parsing
        given = [] if current is None or current is self.default else list(current)
        new = [] if values is None else [values] if isinstance(values, str) else list(values)
        setattr(namespace, self.dest, given + new)


def output_folder(path: str | Path) -> Path:
    """The folder ``path`` is to be written in; an OSError naming ``path`` if it
    cannot be written there (checked before a long run, so that its results are
    not lost at the end)."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    if not folder.exists():
        raise FileNotFoundError(
            errno.ENOENT, f"{os.strerror(errno.ENOENT)} (no folder {folder})", str(path)
        )
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", str(path))
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write in {folder}", str(path))
    return folder


def plain(doc: str) -> str:
    """A docstring as terminal text: ``code`` and `name` marks dropped."""
    return re.sub(r"`{1,2}([^`]+)`{1,2}", r"\1", doc).strip()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written (its paragraphs and examples kept); after each
    option's help, its default when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_ = action.help or ""
        default = action.default
        if (
            "%(default)" in help_
            or "(default" in help_
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not action.option_strings
        ):
            return help_
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
        return f"{help_} (default: {shown})"


class CommandParser(argparse.ArgumentParser):
    """A command's parser whose mistakes are one line, as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def command_parser(name: str, doc: str) -> CommandParser:
    """The parser of ``gridshare NAME``, described by its module's docstring."""
    return CommandParser(
        prog=f"gridshare {name}", description=plain(doc), formatter_class=HelpFormatter
    )


def _number(text: str, kind: type[float] | type[int]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive(text: str) -> float:
    """An option's number that must be above 0 (a speed, an interval)."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def at_least_zero(text: str) -> float:
    """An option's number that may be 0 but not below (a duration)."""
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, not {text}")
    return value


def port(text: str) -> int:
    """A TCP port (0: any free port)."""
    value = int(_number(text, int))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return value


def check_url(option: str, value: str, *schemes: str) -> None:
    """OptionError unless ``value`` starts with one of ``schemes`` (``ws``, ``http``...)."""
    if not value.startswith(tuple(f"{s}://" for s in schemes)):
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise OptionError(f"{option} {value!r}: not a URL starting with {wanted}")
