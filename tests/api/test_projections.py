"""The read model as the service and the fake both build it (`gridshare.api.projections`)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gridshare.api.projections import (
    EndedSession,
    ended_session_out,
    group_out,
    paused_sessions,
    planned_points,
)
from optimizer.site import Line
from tests.api.conftest import WRITE, Clock
from tests.api.fake_backend import FakeSite


async def test_a_limit_from_now_on_is_in_force_now(client: httpx.AsyncClient, clock: Clock) -> None:
    body = {"limit_a": 45, "start": clock.now.isoformat()}
    r = await client.put("/api/groups/panel-a/limit", json=body, headers=WRITE)
    assert r.json()["group"]["override"]["active_now"] is True
    assert (await client.get("/api/status")).json()["overrides_active"] == 1


async def test_a_limit_ahead_is_not_counted_as_active(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    start = clock.now + timedelta(hours=1)
    body = {
        "limit_a": 45,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
    }
    r = await client.put("/api/groups/panel-a/limit", json=body, headers=WRITE)
    assert r.json()["group"]["override"]["active_now"] is False
    assert (await client.get("/api/status")).json()["overrides_active"] == 0


async def test_a_group_sums_only_the_running_sessions(fake: FakeSite) -> None:
    tree = await fake.groups()
    panel_b = next(g for g in tree.groups if g.id == "panel-b")
    plan = fake.plan_obj
    assert plan is not None
    # CP05/2 has no car: the plan's row for it counts nowhere
    running = [c for c in ("CP04/1", "CP05/1") if fake.active_on(c) is not None]
    assert panel_b.planned_a[Line.L1] == round(sum(plan.now_a(c) for c in running), 2)


def test_an_ended_session_has_no_need_left_to_show(fake: FakeSite) -> None:
    s = fake.session_by_id["T1"]
    out = ended_session_out(
        EndedSession(
            session_id=s.session_id,
            connector_id=s.connector_id,
            id_tag=s.id_tag,
            started_at=s.started_at,
            ended_at=s.started_at + timedelta(hours=1),
            delivered_kwh=12.3456,
            departure=None,
            energy_need_stated=True,
            priority=None,
        )
    )
    assert out.energy_need_kwh is None and out.energy_kwh == 12.346
    assert out.departure_estimated and not out.energy_need_estimated and out.priority == 1.0


def test_paused_means_offered_nothing_while_needing_energy(fake: FakeSite) -> None:
    plan = fake.plan_obj
    running = {cid: s.session_id for cid, s in fake.running().items()}
    assert paused_sessions(plan, running) == set()
    assert paused_sessions(None, running) == set()


def test_a_plan_made_in_an_earlier_slot_is_read_where_it_stands_now(fake: FakeSite) -> None:
    """A group's planned load is the plan's slot that holds now, as its capacity is:
    a plan made before a lower capacity began must not show the old slot's load
    beside the new capacity."""
    plan = fake.plan_obj
    assert plan is not None
    root = fake.site.root.id
    members = fake.group_connectors(root)
    running = fake.running().keys()
    rows = {cid: i for i, cid in enumerate(plan.connector_ids)}

    def planned_l1(slot: int) -> float:
        return sum(
            w * float(plan.current_a[rows[cid], slot])
            for cid, w in members.items()
            if cid in running and Line.L1 in fake.plan_lines(cid)
        )

    # the first slot whose plan differs from slot 0's (the DSO's cut ahead lowers it)
    later = next(i for i in range(1, plan.grid.slots) if abs(planned_l1(i) - planned_l1(0)) > 1)
    now = plan.grid.slot_start(later) + timedelta(minutes=1)
    out = group_out(
        fake.site,
        root,
        now,
        members=members,
        capacity=fake.capacity_slot(now),
        override=None,
        dso_forecast=None,
        plan=plan,
        running=running,
        measured={},
        measured_kw={},
    )
    assert out.planned_a[Line.L1] == round(planned_l1(later), 2)
    assert out.capacity_a is not None and out.planned_a[Line.L1] <= out.capacity_a + 1e-6
    points = planned_points(
        fake.site,
        root,
        now,
        plan=plan,
        capacity=fake.capacity(plan.grid, now),
        members=members,
        running=running,
    )
    assert points[0].at == now
    assert points[0].planned_a is not None
    assert points[0].planned_a[Line.L1] == round(planned_l1(later), 2)


async def test_the_status_gives_the_site_time_zone(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/status")).json()
    assert body["timezone"] == "UTC"
