"""What the commands share: list options, checking an output's folder.

Every option that takes several values uses `ListOption`, so ``--x a b``,
``--x a --x b`` and a mix of both all give ``[a, b]``. argparse's own
``nargs="+"`` keeps only the last use, and its ``"extend"`` adds to the
default instead of replacing it.
"""

from __future__ import annotations

import argparse
import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
    """The folder ``path`` is to be written in; FileNotFoundError if it is not
    there (checked before a long run, so its results are not lost at the end)."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"no folder {folder}", str(path))
    return folder
