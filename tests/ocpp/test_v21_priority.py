"""OCPP 2.1 NotifyPriorityCharging becomes a domain event, answered only once the
application took it; bad ones get the schema's CALLERROR and no event."""

from __future__ import annotations

import pytest

from ocpp_adapter.events import PriorityChargingNotified
from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import CallFailed, running, station
from tests.ocpp.test_v21 import official

V21 = OcppVersion.V21


async def test_the_station_s_boost_is_an_event_and_a_bad_one_is_refused() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V21) as st:
        await st.boot()
        for activated in (True, False):
            payload = {"transactionId": "T-1", "activated": activated}
            official(V21, "NotifyPriorityCharging", payload)
            reply = await st.call("NotifyPriorityCharging", payload)
            official(V21, "NotifyPriorityCharging", reply, response=True)
        with pytest.raises(CallFailed):
            await st.call("NotifyPriorityCharging", {"transactionId": "T-1"})
    on, off = rec.of(PriorityChargingNotified)
    assert (on.station_id, on.transaction_id, on.activated) == ("CP1", "T-1", True)
    assert off.activated is False
