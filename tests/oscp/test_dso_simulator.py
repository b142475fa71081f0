"""The simulated DSO: profiles, CSV forecasts, and the ``gridshare dso`` command."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from forecasts import ForecastType, Phase, Unit
from gridshare.commands import dso as dso_command
from gridshare.peers.dso import blocks_from_csv, evening_peak_cut, step_at

from .harness import running


def test_evening_peak_cut_profile() -> None:
    now = datetime(2026, 11, 22, 16, 7, tzinfo=UTC)
    blocks = evening_peak_cut(now, base_kw=100, cut_kw=40)
    assert len(blocks) == 96
    assert blocks[0].start == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    by_hour = {b.start.hour: b.capacity for b in blocks}
    assert by_hour[16] == 100 and by_hour[17] == 40 and by_hour[20] == 40 and by_hour[21] == 100
    assert all(b.end - b.start == timedelta(minutes=15) for b in blocks)


def test_step_profile() -> None:
    at = datetime(2026, 11, 22, 16, 2, tzinfo=UTC)
    before, after = step_at(at, before=64, after=32)
    assert before.end == after.start == at and after.capacity == 32


def test_blocks_from_csv(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text(
        "group_id,type,start_time,end_time,capacity,unit,phase\n"
        "trafo-1,CONSUMPTION,2026-11-22T17:00:00Z,2026-11-22T18:00:00Z,50,KW,ALL\n"
        "trafo-1,FALLBACK_CONSUMPTION,2026-11-22T17:00:00Z,2026-11-22T18:00:00Z,20,A,\n"
    )
    got = blocks_from_csv(p)
    (c,) = got[("trafo-1", ForecastType.CONSUMPTION)]
    assert (c.capacity, c.unit, c.phase) == (50, Unit.KW, Phase.ALL)
    (f,) = got[("trafo-1", ForecastType.FALLBACK_CONSUMPTION)]
    assert f.unit is Unit.A and f.phase is Phase.ALL
    p.write_text("group_id,start_time,end_time,capacity\ng,bad,2026-11-22T18:00:00Z,1\n")
    with pytest.raises(ValueError, match=r"f\.csv:2"):
        blocks_from_csv(p)


def dso_args(fp_url: str, *extra: str) -> argparse.Namespace:
    """`gridshare dso` arguments as its own parser reads them, for the harness's FP."""
    base = ["--fp-url", fp_url, "--token", "oob", "--group", "trafo-1"]
    return dso_command.parser().parse_args([*base, *extra])


async def test_dso_command_runs_the_whole_flow(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(token_to_us="oob") as h:
        args = dso_args(
            h.fp_url, "--heartbeat-s", "0.1", "--refresh-s", "0.3", "--duration-s", "0.7"
        )
        assert await dso_command.run(args) == 0
        assert len(h.stored) >= 2
        assert h.stored[0].blocks[0].unit is Unit.KW
        assert len(h.heartbeats) >= 2
    out = capsys.readouterr().out
    assert "[dso] registered" in out
    assert "<- handshake_acknowledge" in out
    assert "oob" not in out


def test_dso_command_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        dso_command.main(["--profile", "nope"])


async def test_dso_command_step_profile() -> None:
    async with running(token_to_us="oob") as h:
        args = dso_args(
            h.fp_url,
            *("--profile", "step", "--cut-kw", "50", "--step-in-s", "120"),
            *("--heartbeat-s", "1", "--refresh-s", "1", "--duration-s", "0.2"),
        )
        assert await dso_command.run(args) == 0
        before, after = h.stored[0].blocks
        assert (before.capacity, after.capacity) == (100.0, 50.0)
        assert after.start - before.start == timedelta(minutes=3)


def test_dso_command_gives_up_on_an_unreachable_fp(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--fp-url", "http://127.0.0.1:9/oscp/fp/2.0", "--token", "t", "--duration-s", "0.3"]
    assert dso_command.main(argv) == 2
    captured = capsys.readouterr()
    assert "FP not ready" in captured.out and "gridshare dso:" in captured.err


class SentForecasts:
    """Stands in for the simulated DSO: records what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ForecastType, int]] = []

    async def send_forecast(self, group: str, type_: ForecastType, blocks: list[Any]) -> None:
        self.sent.append((group, type_, len(blocks)))


async def test_dso_reads_its_forecast_file_once(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text(
        "group_id,type,start_time,end_time,capacity,unit,phase\n"
        "trafo-1,CONSUMPTION,2026-11-22T17:00:00Z,2026-11-22T18:00:00Z,50,KW,ALL\n"
    )
    args = dso_command.parser().parse_args(["--fp-url", "http://fp", "--csv", str(p)])
    from_csv = blocks_from_csv(p)
    p.unlink()  # every later refresh sends what was read at the start
    dso = SentForecasts()
    for _ in range(2):
        await dso_command.send_forecasts(dso, args, from_csv)  # type: ignore[arg-type]
    assert dso.sent == [("trafo-1", ForecastType.CONSUMPTION, 1)] * 2
