"""The command line: list options add up."""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gridshare.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DEPOT = EXAMPLES / "depot.toml"
JPL_SITE = EXAMPLES / "acn-jpl.toml"
JPL_SESSIONS = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"


# --- list options -------------------------------------------------------------------


def _benchmark(path: Path) -> ModuleType:
    name = f"benchmark_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _parsers() -> Iterator[tuple[str, Callable[[], argparse.ArgumentParser]]]:
    for name, (module, _) in COMMANDS.items():
        yield f"gridshare {name}", importlib.import_module(module).parser
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        yield f"benchmarks/{path.name}", _benchmark(path).parser


PARSERS = dict(_parsers())


def _samples(action: argparse.Action) -> list[str]:
    """Two command-line values the action accepts."""
    if action.choices is not None:
        choices = [str(c) for c in action.choices]
        return (choices * 2)[:2]
    convert: Any = action.type or str
    for pair in (["1", "2"], ["2019-05-01", "2019-05-02"], ["a", "b"]):
        try:
            [convert(v) for v in pair]
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            continue
        return pair
    raise AssertionError(f"no sample value for {action.dest}")


def _parsed(action: argparse.Action, values: list[str]) -> list[Any]:
    convert: Any = action.type or str
    return [convert(v) for v in values]


def _parse(p: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    try:
        return p.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{p.prog} refuses {argv}")


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_list_option_adds_up_when_repeated(name: str) -> None:
    p = PARSERS[name]()
    actions = p._actions  # argparse has no public list of its options
    required: list[str] = []
    for a in actions:
        if a.required:
            required += [*a.option_strings[:1], _samples(a)[0]]
    listed = 0
    for a in actions:
        if not a.option_strings or a.nargs == 0 or a.dest == "help":
            continue
        opt = a.option_strings[0]
        v1, v2 = _samples(a)
        default = copy.deepcopy(a.default)
        repeated = getattr(_parse(p, [*required, opt, v1, opt, v2]), a.dest)
        if a.nargs not in ("+", "*") and not isinstance(repeated, list):
            continue  # a single value: the last one given counts
        listed += 1
        expected = _parsed(a, [v1, v2])
        assert repeated == expected, f"{name} {opt} {v1} {opt} {v2}"
        assert getattr(_parse(p, [*required, opt, v1, v2]), a.dest) == expected
        # a use replaces the default, it does not add to it
        assert getattr(_parse(p, [*required, opt, v1]), a.dest) == expected[:1]
        assert getattr(_parse(p, required), a.dest) == default
        assert a.default == default, f"{name} {opt}: parsing changed the default"
    if name in ("gridshare simulate", "benchmarks/acn_strategies.py"):
        assert listed >= 2


def test_simulate_keeps_every_strategy_given(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = ["simulate", "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
            "--from", "2019-05-08", "--to", "2019-05-08",
            "--strategy", "uncontrolled", "--strategy", "edf", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert set(run["strategies"]) == {"uncontrolled", "edf"}
