"""The command line: list options add up, and mistakes in what the user gives
(a path, a database, a port) end in one line and exit code 2, not a traceback."""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import json
import logging
import os
import socket
import subprocess
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


# --- user mistakes: one line, exit 2 ------------------------------------------------


def gridshare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gridshare.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # serve logs its start before failing
    for word in words:
        assert word in last, last
    return last


@pytest.fixture
def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n" * 10)
    return path


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("")
    return path


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_database_in_a_missing_folder(tmp_path: Path, command: str) -> None:
    db = tmp_path / "no-such-folder" / "site.db"
    done = gridshare(command, "--config", str(DEPOT), "--db", str(db), cwd=tmp_path)
    one_line(done, f"gridshare {command}:", str(db), "no folder")
    assert not db.parent.exists()


def test_a_database_below_a_file(tmp_path: Path, a_file: Path) -> None:
    db = a_file / "site.db"
    done = gridshare("serve", "--config", str(DEPOT), "--db", f"sqlite:///{db}", cwd=tmp_path)
    one_line(done, str(db), "is not a folder")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_file_that_is_not_a_database(tmp_path: Path, not_a_database: Path, command: str) -> None:
    before = not_a_database.read_bytes()
    done = gridshare(command, "--config", str(DEPOT), "--db", str(not_a_database), cwd=tmp_path)
    one_line(done, str(not_a_database), "not a database")
    assert not_a_database.read_bytes() == before


def test_a_database_backend_gridshare_lacks(tmp_path: Path) -> None:
    done = gridshare("serve", "--config", str(DEPOT), "--db", "postgres://db/gs", cwd=tmp_path)
    one_line(done, "postgres")


@pytest.mark.parametrize("which", ["--ocpp-port", "--http-port"])
def test_a_port_in_use_is_named(tmp_path: Path, which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {"--ocpp-port": "0", "--http-port": "0", which: str(port)}
        done = gridshare(
            "serve", "--config", str(DEPOT), "--db", str(tmp_path / "site.db"),
            "--host", "127.0.0.1", *(x for kv in ports.items() for x in kv),
            cwd=tmp_path,
        )  # fmt: skip
    one_line(done, str(port), "in use")


def test_the_simulated_dso_names_its_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = gridshare(
            "dso", "--fp-url", "http://127.0.0.1:9/oscp/fp/2.0", "--port", str(port),
            "--duration-s", "1", cwd=tmp_path,
        )  # fmt: skip
    one_line(done, str(port), "in use")


def test_plan_into_a_missing_folder(tmp_path: Path) -> None:
    done = gridshare(
        "plan", "--site", str(DEPOT), "--sessions", str(EXAMPLES / "depot-sessions.csv"),
        "--out", "nodir/plan.csv", cwd=tmp_path,
    )  # fmt: skip
    one_line(done, "gridshare plan:", "nodir/plan.csv", "No such file or directory")


@pytest.mark.parametrize("option", ["--site", "--sessions"])
def test_plan_given_a_folder_for_a_file(tmp_path: Path, option: str) -> None:
    files = {"--site": str(DEPOT), "--sessions": str(EXAMPLES / "depot-sessions.csv")}
    files[option] = str(tmp_path)
    done = gridshare(
        "plan", *(x for kv in files.items() for x in kv), "--out", "plan.csv", cwd=tmp_path
    )
    one_line(done, str(tmp_path), "Is a directory")


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_simulate_into_a_missing_folder(tmp_path: Path, option: str) -> None:
    outputs = {"--out": "report.json", "--plot": "report.png", option: "nodir/x"}
    done = gridshare(
        "simulate", "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--strategy", "uncontrolled",
        *(x for kv in outputs.items() for x in kv), cwd=tmp_path,
    )  # fmt: skip
    one_line(done, "gridshare simulate:", "nodir/x", "no folder nodir")  # told before the runs


def test_demo_with_its_plot_folder_below_a_file(tmp_path: Path, a_file: Path) -> None:
    done = gridshare(
        "demo", "--config", str(DEPOT), "--no-live", "--out", str(a_file / "plots"), cwd=tmp_path
    )
    one_line(done, "gridshare demo:", str(a_file / "plots"), "Not a directory")


def test_simulate_given_a_folder_for_the_site(tmp_path: Path) -> None:
    done = gridshare(
        "simulate", "--site", str(tmp_path), "--sessions", str(JPL_SESSIONS),
        "--out", "r.json", cwd=tmp_path,
    )  # fmt: skip
    one_line(done, str(tmp_path))


def test_import_acn_into_a_file(tmp_path: Path, a_file: Path) -> None:
    done = gridshare(
        "import-acn", str(ROOT / "data" / "acn" / "sites.json"), "--out", str(a_file / "x"),
        cwd=tmp_path,
    )  # fmt: skip
    one_line(done, "gridshare import-acn:", str(a_file))


def test_stations_without_their_site_file(tmp_path: Path) -> None:
    done = gridshare(
        "stations", "--url", "ws://127.0.0.1:9/ocpp", "--config", "none.toml", cwd=tmp_path
    )
    one_line(done, "none.toml", "no such file")


def test_dso_without_its_forecast_file(tmp_path: Path) -> None:
    done = gridshare(
        "dso", "--fp-url", "http://127.0.0.1:9/oscp/fp/2.0", "--csv", "none.csv", cwd=tmp_path
    )
    one_line(done, "none.csv")


# --- a bug stays a bug ----------------------------------------------------------------


@pytest.fixture
def broken_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A command whose code has a bug: a KeyError, and a ValueError no one meant for users."""
    (tmp_path / "broken_command.py").write_text(
        "def main(argv):\n"
        "    if argv == ['value']:\n"
        "        raise ValueError('a bug')\n"
        "    if argv == ['reset']:\n"
        "        raise ConnectionResetError(104, 'Connection reset by peer')\n"
        "    return {}['missing']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "broken", ("broken_command", "a command with a bug"))
    return "broken"


def test_a_bug_keeps_its_traceback(broken_command: str) -> None:
    with pytest.raises(KeyError):
        main([broken_command])
    with pytest.raises(ValueError, match="a bug"):
        main([broken_command, "value"])
    with pytest.raises(ConnectionResetError):
        main([broken_command, "reset"])


# --- every command logs through the redacting handler ---------------------------------

_THEN_LOG = (
    "import logging, sys\n"
    "from gridshare.cli import main\n"
    "main(sys.argv[1:])\n"
    "logging.getLogger('gridshare.x').warning('Authorization: Bearer s3cr3t-t0ken-value')\n"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["dso", "--fp-url", "http://127.0.0.1:9/oscp/fp/2.0", "--token", "t", "--duration-s", "0"],
        ["stations", "--url", "ws://127.0.0.1:9/ocpp", "--count", "1", "--duration", "0.5"],
    ],
    ids=["dso", "stations"],
)
def test_a_simulator_command_redacts_its_log_records(tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _THEN_LOG, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert "WARNING gridshare.x: Authorization: Bearer ***" in done.stderr, done.stderr
    assert "s3cr3t" not in done.stderr


# --- checked before the work, told in one line ----------------------------------------


def test_plan_checks_its_output_folder_before_solving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gridshare.commands.plan as plan

    def no_solve(*args: object, **kwargs: object) -> None:
        raise AssertionError("solved before the output folder was checked")

    monkeypatch.setattr(plan, "solve", no_solve)
    monkeypatch.chdir(tmp_path)
    argv = ["plan", "--site", str(DEPOT), "--sessions", str(EXAMPLES / "depot-sessions.csv")]
    assert main([*argv, "--out", "nodir/plan.csv"]) == 2
    assert capsys.readouterr().err == (
        "gridshare plan: nodir/plan.csv: No such file or directory (no folder nodir)\n"
    )
    (tmp_path / "a-folder").mkdir()
    assert main([*argv, "--out", "a-folder"]) == 2
    assert capsys.readouterr().err == "gridshare plan: a-folder: is a folder; give a file name\n"


def test_simulate_refuses_to_before_from(tmp_path: Path) -> None:
    done = gridshare(
        "simulate", "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-01", "--out", "r.json", cwd=tmp_path,
    )  # fmt: skip
    assert one_line(done) == "gridshare simulate: --to is before --from (2019-05-01 < 2019-05-08)"


def test_simulate_on_another_sites_file_names_both_sides(tmp_path: Path) -> None:
    caltech = EXAMPLES / "acn-caltech.toml"
    done = gridshare(
        "simulate", "--site", str(caltech), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--out", "r.json", cwd=tmp_path,
    )  # fmt: skip
    last = one_line(done, str(JPL_SESSIONS), f"is at a station of {caltech}")
    assert "(the sessions': AG-1F01, AG-1F02, AG-1F03, …; the site's: CA-" in last
    assert not (tmp_path / "r.json").exists()


def test_the_simulated_dso_says_what_it_waited_for(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/oscp/fp/2.0"
    done = gridshare("dso", "--fp-url", url, "--token", "t", "--duration-s", "1", cwd=tmp_path)
    assert one_line(done) == (
        f"gridshare dso: {url}: not registered within 1 s: nothing answers there"
    )
    done = gridshare("dso", "--fp-url", url, "--duration-s", "0.5", cwd=tmp_path)
    last = one_line(done, f"no Register from the FP at {url} within 0.5 s")
    assert "or give --token" in last


# --- help and version -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_explained_with_its_default(name: str) -> None:
    p = PARSERS[f"gridshare {name}"]()
    assert p.prog == f"gridshare {name}"
    assert p.description and "`" not in p.description, p.description
    assert "`" not in p.format_help()
    formatter = p.formatter_class(prog=p.prog)
    for a in p._actions:  # argparse has no public list of its options
        if a.dest == "help":
            continue
        assert a.help, f"gridshare {name} {a.option_strings}: no help"
        shown = "default" in (formatter._get_help_string(a) or "")
        assert shown or a.default is None or a.default is False, f"{name} {a.option_strings}"


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"gridshare {metadata.version('gridshare')}\n"


def test_the_example_site_lets_the_dashboard_write() -> None:
    from gridshare.config import load_config

    config = load_config(DEPOT, environ={})
    (token,) = config.api.tokens
    assert token.role == "write" and "change-me" in token.token.get_secret_value()
    comment = DEPOT.read_text().split("[[api.tokens]]")[0].rsplit("\n\n", 1)[-1]
    assert "EXAMPLE TOKEN" in comment and "Replace it" in comment


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--config", "x.toml", "--http-port", "70000"],
         "gridshare serve: argument --http-port: a port is 0 to 65535, not 70000"),
        (["serve", "--config", "x.toml", "--log-level", "LOUD"],
         "gridshare serve: argument --log-level: invalid choice: 'LOUD'"),
        (["demo", "--speed", "0"], "gridshare demo: argument --speed: must be > 0, not 0"),
        (["stations", "--url", "localhost:9000", "--count", "1"],
         "gridshare stations: --url 'localhost:9000': not a URL starting with ws:// or wss://"),
        (["dso", "--fp-url", "localhost:8080"],
         "gridshare dso: --fp-url 'localhost:8080': not a URL starting with http:// or https://"),
        (["plan", "--site", "x.toml"],
         "gridshare plan: the following arguments are required: --sessions, --out"),
    ],
)  # fmt: skip
def test_a_wrong_option_is_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own way out
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(expected), err


# --- the simulated DSO's forecast file: the site's times, as every CSV -----------------


def test_dso_forecast_times_without_offset_are_the_sites(tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from forecasts.model import ForecastType
    from gridshare.peers.dso import blocks_from_csv

    p = tmp_path / "f.csv"
    p.write_text(
        "group_id,start_time,end_time,capacity\n"
        "grid,2026-11-23T17:00,2026-11-23T18:00:00+00:00,50\n"
        "grid,2026-07-01T17:00,2026-07-01T18:00,40\n"
    )
    winter, summer = blocks_from_csv(p, ZoneInfo("Europe/Amsterdam"))[
        ("grid", ForecastType.CONSUMPTION)
    ]
    assert winter.start == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # CET: UTC+1
    assert winter.end == datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # an offset says otherwise
    assert summer.start == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)  # CEST: UTC+2


def test_dso_forecast_times_without_offset_need_the_site(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(
        "group_id,start_time,end_time,capacity\ngrid,2026-11-23T16:00Z,2026-11-23T18:00,50\n"
    )
    url = "http://127.0.0.1:9/oscp/fp/2.0"
    done = gridshare("dso", "--fp-url", url, "--csv", "f.csv", cwd=tmp_path)
    assert one_line(done) == (
        "gridshare dso: f.csv:2: end_time: '2026-11-23T18:00' has no offset; give the site "
        "file (--config SITE.toml) to read it in its [site] timezone"
    )
    # with the site's file the forecast is read, and the DSO goes on to register
    site = str(DEPOT)
    argv = ("--csv", "f.csv", "--config", site, "--token", "t", "--duration-s", "0.5")
    one_line(gridshare("dso", "--fp-url", url, *argv, cwd=tmp_path), "not registered within 0.5 s")
    (tmp_path / "f.csv").write_text("group_id,start_time,capacity\ngrid,2026-11-23T17:00Z,50\n")
    done = gridshare("dso", "--fp-url", url, "--csv", "f.csv", cwd=tmp_path)
    assert one_line(done) == "gridshare dso: f.csv:1: missing column(s): end_time"
    (tmp_path / "f.csv").write_text(
        "group_id,start_time,end_time,capacity\ngrid,2026-11-23T17:00Z,2026-11-23T18:00Z,lots\n"
    )
    done = gridshare("dso", "--fp-url", url, "--csv", "f.csv", cwd=tmp_path)
    assert one_line(done) == "gridshare dso: f.csv:2: capacity: not a number: 'lots'"
    (tmp_path / "f.csv").write_text(
        "group_id,start_time,end_time,capacity,unit\ngrid,2026-11-23T17:00Z,2026-11-23T18:00Z,5,kw\n"
    )
    done = gridshare("dso", "--fp-url", url, "--csv", "f.csv", cwd=tmp_path)
    assert one_line(done) == "gridshare dso: f.csv:2: unit: 'kw' is not one of A, W, KW, WH, KWH"


# --- the demo off a terminal, and stopped with Ctrl-C -----------------------------------


@pytest.mark.slow
def test_demo_stopped_with_ctrl_c_reports_what_ran(tmp_path: Path) -> None:
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "gridshare.cli", "demo", "--config", str(DEPOT)]
    proc = subprocess.Popen(
        [*argv, "--duration", "120", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # off a terminal: a progress line at once
            lines.append(proc.stdout.readline())
            if lines[-1].startswith("[demo] "):
                break
        first = lines[-1]
        assert first.startswith("[demo] ") and " of 120 s · simulated " in first, lines
        assert "cars plugged in" in first and "kWh delivered" in first
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C) after " in out
    # the summary as when it runs to its end, each line whole (not cut at 80 columns)
    summary = next(ln for ln in out.splitlines() if ln.startswith("gridshare demo: "))
    assert "energy" in summary and summary.endswith(tuple("0123456789")), out
    assert "largest excess of limits in force over capacity: 0.0 A" in out
    assert (tmp_path / "demo.png").stat().st_size > 10_000


async def test_the_simulated_dso_takes_a_request_cut_short_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    from gridshare.peers.dso import SimulatedDso

    said: list[str] = []
    dso = SimulatedDso(registration_token="t", out=said.append)
    await dso.start()
    try:
        host, port = dso.base_url.split("//")[1].split("/")[0].split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /oscp/cp/2.0/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Token t\r\n"
            b"X-Request-ID: 1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()  # the FP gives up half way through its body
        for _ in range(50):
            if said:
                break
            await asyncio.sleep(0.05)
    finally:
        await dso.stop()
    assert said == ["[dso] <- heartbeat: the FP hung up before its request arrived whole"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert dso.received == []


# --- import-acn: every mistake one line ---------------------------------------------------

SITES_JSON = ROOT / "data" / "acn" / "sites.json"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nope.json"], "gridshare import-acn: nope.json: no such file"),
        ([str(DEPOT)], f"gridshare import-acn: {DEPOT}:1:1: not JSON (Expecting value)"),
        ([str(SITES_JSON), "--site", "nope", "jpl"],
         f"gridshare import-acn: {SITES_JSON}: no site 'nope' (it has caltech, jpl)"),
        ([str(SITES_JSON), "--slot-minutes", "7"],
         "gridshare import-acn: argument --slot-minutes: 7 does not divide 60 (1, 2, 3, 4, 5, "
         "6, 10, 12, 15, 20, 30, 60) (see gridshare import-acn --help)"),
        ([str(SITES_JSON), "--horizon-hours", "0"],
         "gridshare import-acn: argument --horizon-hours: must be > 0, not 0"),
    ],
)  # fmt: skip
def test_import_acn_mistakes_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    done = gridshare("import-acn", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert one_line(done).startswith(expected), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_stations_where_nothing_listens_say_so(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ocpp"
    done = gridshare("stations", "--url", url, "--count", "2", "--duration", "2", cwd=tmp_path)
    assert one_line(done).startswith(
        f"gridshare stations: {url}: no station could connect: nothing listens there ("
    )
    assert "0/2 booted" in done.stdout and "2 not connected: nothing listens there" in done.stdout


# --- plan: --start -----------------------------------------------------------------------


def test_plan_with_a_start_that_is_no_time(tmp_path: Path) -> None:
    sessions = str(EXAMPLES / "depot-sessions.csv")
    argv = ("plan", "--site", str(DEPOT), "--sessions", sessions, "--out", "p.csv")
    done = gridshare(*argv, "--start", "yesterday", cwd=tmp_path)
    assert one_line(done) == (
        "gridshare plan: --start 'yesterday': not an ISO time (2026-11-23T16:00Z, or "
        "2026-11-23T17:00 in the site's timezone)"
    )
    assert not (tmp_path / "p.csv").exists()


def test_plan_leaves_out_the_cars_gone_before_its_start(tmp_path: Path) -> None:
    sessions = str(EXAMPLES / "depot-sessions.csv")
    argv = ("plan", "--site", str(DEPOT), "--sessions", sessions, "--out", "p.csv")
    # every car of the example has left by 08:00 on the 24th, Amsterdam time
    done = gridshare(*argv, "--start", "2026-11-24T08:00", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["start"] == "2026-11-24T07:00:00+00:00"  # the site's 08:00
    assert (figures["sessions"], figures["sessions_left_out"]) == (0, 20)
    assert figures["energy_requested_kwh"] == figures["unmet_kwh"] == 0.0  # nothing owed
    assert done.stderr.strip() == (
        "gridshare plan: 20 of 20 sessions leave before the plan's start "
        "(2026-11-24T07:00:00+00:00): left out"
    )
    done = gridshare(*argv, "--start", "2026-11-23T16:00Z", cwd=tmp_path)
    figures = json.loads(done.stdout)
    assert (figures["sessions"], figures["sessions_left_out"]) == (20, 0) and not done.stderr


# --- the README's API write bodies are what the API takes --------------------------------


def test_the_readmes_write_bodies_are_accepted() -> None:
    import re

    from pydantic import TypeAdapter

    from gridshare.api.schemas import (
        CapacityAdjustRequest,
        GroupLimitRequest,
        SessionPatch,
        StationCommand,
    )

    models: dict[str, Any] = {
        "PUT /api/groups/{id}/limit": GroupLimitRequest,
        "POST /api/groups/{id}/adjust": CapacityAdjustRequest,
        "PATCH /api/sessions/{id}": SessionPatch,
        "POST /api/stations/{id}/commands": StationCommand,
    }
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\| `([A-Z]+ /api/[^`]+)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = re.findall(r"`(\{.*?\})`", m.group(2))
    assert set(rows) == set(models)
    commands = set()
    for write, bodies in rows.items():
        assert bodies, write
        for body in bodies:
            parsed = TypeAdapter(models[write]).validate_json(body)
            commands.add(getattr(parsed, "command", None))
    # every station command the API knows has its example
    union = TypeAdapter(StationCommand).json_schema()
    known = {
        v["properties"]["command"]["const"]
        for v in union["$defs"].values()
        if "command" in v.get("properties", {})
    }
    assert len(known) == 5 and known <= commands, known


# --- the command line itself ----------------------------------------------------------------


def test_no_command_is_a_mistake_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("gridshare: a command is needed\n\nusage: gridshare")
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: gridshare COMMAND") and err == ""


def test_python_dash_m_gridshare_is_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "gridshare", "--version"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("gridshare "), done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "gridshare", "serve", "--config", "none.toml"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert one_line(done) == "gridshare serve: none.toml: no such file"


def test_serve_help_says_the_ports_it_uses_by_default() -> None:
    text = " ".join(PARSERS["gridshare serve"]().format_help().split())
    for option, default in (
        ("--host", "127.0.0.1"),
        ("--ocpp-port", "9000"),
        ("--http-port", "8080"),
    ):
        assert f"else {default})" in text.split(option)[-1].split("--")[0], option


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["--sessions", "nope.csv"], "gridshare simulate: nope.csv: no such file"),
        (["--sessions", "."], "gridshare simulate: .: not a file"),
        (["--sessions", str(EXAMPLES / "depot-sessions.csv"), "--capacity", "cap.csv"],
         "gridshare simulate: cap.csv: no such file"),
    ],
)  # fmt: skip
def test_simulate_on_files_that_are_not_there(
    tmp_path: Path, given: list[str], expected: str
) -> None:
    done = gridshare("simulate", "--site", str(DEPOT), *given, "--out", "r.json", cwd=tmp_path)
    assert one_line(done) == expected
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,b\n1,2\n3,4,5,6,7\n",
         "s.csv: line 3: 5 fields where the header has 2; not a sessions CSV?"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
         "s.csv: cannot be read as a CSV text file (UnicodeDecodeError)"),
        (b"", "s.csv: empty, not a sessions CSV"),
    ],
)  # fmt: skip
def test_simulate_on_a_sessions_file_that_is_no_csv(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    (tmp_path / "s.csv").write_bytes(content)
    done = gridshare(
        "simulate", "--site", str(DEPOT), "--sessions", "s.csv", "--out", "r.json", cwd=tmp_path
    )
    assert done.returncode == 2
    assert one_line(done) == f"gridshare simulate: {expected}"
    assert len(done.stderr.splitlines()) == 1


async def test_the_simulated_dso_stops_at_once_on_a_refused_token() -> None:
    import asyncio
    import time

    from gridshare.commands import dso as dso_command
    from gridshare.peers.dso import FpAnswered
    from tests.oscp.harness import running

    async with running(token_to_us="the-right-one") as h:
        argv = ["--fp-url", h.fp_url, "--token", "a-wrong-one", "--group", "trafo-1"]
        args = dso_command.parser().parse_args(argv)  # no --duration-s: it would retry forever
        t0 = time.monotonic()
        with pytest.raises(dso_command.DsoGaveUp) as refused:
            await asyncio.wait_for(dso_command.run(args), 10)
        assert time.monotonic() - t0 < 5
        assert str(refused.value).startswith(
            f"{h.fp_url}: not registered: register: FP answered 403"
        )
        assert "the FP keeps the one of an earlier run" in str(refused.value)
        assert h.stored == []
    assert issubclass(FpAnswered, RuntimeError)


# --- every gridshare command in the README runs as written -------------------------------


def _readme_commands() -> list[list[str]]:
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("gridshare "):
                out.append(shlex.split(line, comments=True))
    return out


@pytest.mark.parametrize("argv", _readme_commands(), ids=lambda a: " ".join(a[:2]))
def test_every_readme_command_parses_as_written(argv: list[str]) -> None:
    assert not {"|", "[", "]", "…", "..."} & {
        c for word in argv for c in (word, word[:1], word[-1:])
    }
    args = _parse(PARSERS[f"gridshare {argv[1]}"](), argv[2:])
    for name, value in vars(args).items():  # the files it names are in the repository
        if name in ("site", "sessions", "capacity", "config", "sites", "csv") and value:
            path = ROOT / str(value)  # serve --config takes a folder of site files too
            assert path.is_file() or (name == "config" and path.is_dir()), f"--{name} {value}"


def test_the_readme_shows_every_command() -> None:
    assert {a[1] for a in _readme_commands()} >= set(COMMANDS) - {"demo", "stations"}


async def test_the_simulated_dso_forecasts_the_site_files_groups(tmp_path: Path) -> None:
    from gridshare.commands import dso as dso_command
    from tests.oscp.harness import running

    site = tmp_path / "site.toml"
    site.write_text(
        DEPOT.read_text().replace('oscp_group_id = "grid"', 'oscp_group_id = "trafo-1"')
    )
    (tmp_path / "f.csv").write_text(
        "group_id,start_time,end_time,capacity\ntrafo-1,2026-11-23T17:00,2026-11-23T18:00,50\n"
    )
    for extra in ([], ["--csv", str(tmp_path / "f.csv")]):
        async with running(token_to_us="oob") as h:
            argv = ["--fp-url", h.fp_url, "--token", "oob", "--config", str(site), *extra]
            args = dso_command.parser().parse_args([*argv, "--duration-s", "0.3"])
            assert await dso_command.run(args, dso_command.read_inputs(args)) == 0
            assert args.group == ["trafo-1"]  # no --group: the site's OSCP groups
            assert h.stored and {f.group_id for f in h.stored} == {"trafo-1"}
    (block,) = h.stored[0].blocks  # 17:00 at the site, in Amsterdam: 16:00 UTC
    assert block.start.isoformat() == "2026-11-23T16:00:00+00:00"
