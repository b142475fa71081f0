"""Progress of long simulations: one log line per simulated day, off a terminal too."""

from __future__ import annotations

import logging

import pytest

from gridshare.commands import simulate
from gridshare.simulation import DayDone, Simulation, make_strategy

from .helpers import JPL_SESSIONS, JPL_SITE, session, tiny_site


def _days(zone: str) -> tuple[list[DayDone], list[float]]:
    site = tiny_site()
    site = site.model_copy(update={"site": site.site.model_copy(update={"timezone": zone})})
    # T0 is 08:00 UTC on a Monday: a car that day, none the next, one the day after
    sessions = [
        session("a", "A/1", 0, 120, 5.0),
        session("b", "B/1", 2 * 24 * 60, 2 * 24 * 60 + 60, 3.0),
    ]
    sim = Simulation(site, sessions)
    seen: list[DayDone] = []
    result = sim.run(make_strategy("equal-share", sim), on_day=seen.append)  # type: ignore[arg-type]
    return seen, [float(x) for x in result.delivered_kwh]


def test_every_local_day_is_reported_once_with_its_own_energy() -> None:
    seen, per_session = _days("UTC")
    assert [(d.day.isoformat(), d.number, d.days) for d in seen] == [
        ("2024-03-04", 1, 3),
        ("2024-03-05", 2, 3),  # no car that day: simulated all the same
        ("2024-03-06", 3, 3),
    ]
    assert seen[0].delivered_kwh == pytest.approx(per_session[0]) and per_session[0] > 4
    assert seen[1].delivered_kwh == 0.0
    assert seen[2].delivered_kwh == pytest.approx(per_session[1]) and per_session[1] > 2
    assert {d.strategy for d in seen} == {"equal-share"}
    assert all(d.violations == 0 and d.chargers == 3 and d.seconds >= 0 for d in seen)


def test_days_are_the_sites_local_days() -> None:
    # 08:00 UTC is 00:00 in Los Angeles on Monday (PST): the first car comes
    # on the site's Monday, the second on its Wednesday
    seen, _ = _days("America/Los_Angeles")
    assert [d.day.isoformat() for d in seen] == ["2024-03-04", "2024-03-05", "2024-03-06"]
    seen, _ = _days("Asia/Tokyo")  # 17:00 there: same days
    assert [d.day.isoformat() for d in seen] == ["2024-03-04", "2024-03-05", "2024-03-06"]
    seen, _ = _days("Pacific/Pago_Pago")  # 21:00 on the Sunday before (UTC-11)
    assert [d.day.isoformat() for d in seen] == ["2024-03-03", "2024-03-04", "2024-03-05"]


def test_simulate_logs_a_line_per_day_strategy_and_capacity(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gridshare.simulate")
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--capacity-kw", "30", "60",
        "--strategy", "edf", "uncontrolled", "--out", str(tmp_path / "r.json"), "--no-progress",
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "gridshare.simulate"]
    days = [m for m in lines if ": day " in m]
    for cap in ("30 kW", "60 kW"):
        for name in ("edf", "uncontrolled"):
            mine = [m for m in days if m.startswith(f"{cap}: {name}: day ")]
            # the day asked for, and the morning after that its last cars leave in
            assert [m.split(" in ")[0] for m in mine] == [
                f"{cap}: {name}: day 1/2 (2019-05-08)",
                f"{cap}: {name}: day 2/2 (2019-05-09)",
            ]
            assert all("kWh delivered" in m for m in mine)
    assert any(
        m.startswith("30 kW: uncontrolled: day 1/2") and " 0 violations" not in m for m in days
    )

    def first(prefix: str) -> int:
        return next(n for n, m in enumerate(lines) if m.startswith(prefix))

    assert lines[-1] == f"report written to {tmp_path / 'r.json'}"
    assert first("30 kW: edf: day 2/2") < first("30 kW: edf done in") < first("30 kW: uncontrolled")


def test_a_hosting_study_names_the_chargers_added_per_day(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gridshare.simulate")
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--capacity-kw", "150",
        "--strategy", "edf", "--add-chargers", "0", "4", "--out", str(tmp_path / "r.json"),
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "gridshare.simulate"]
    assert any(m.startswith("150 kW, 0 chargers added: edf: day 1/") for m in lines)
    assert any(m.startswith("150 kW, 4 chargers added: edf: day 1/") for m in lines)
    assert any(m.startswith("150 kW, 0, 4 chargers added: edf done in") for m in lines)
