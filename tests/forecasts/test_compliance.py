from __future__ import annotations

from forecasts import Limit, excesses
from optimizer.site import Line


def test_excesses_per_line_and_total() -> None:
    lim = Limit(limit_a=32, limit_kw=20)
    assert excesses(lim, {Line.L1: 32.5, Line.L2: 10}, 19.0) == []
    got = excesses(lim, {Line.L1: 40, Line.L2: 10, Line.L3: 33.5}, 22)
    assert [e.quantity for e in got] == ["L1", "L3", "kW"]
    assert str(got[0]) == "40.0 A on L1 over the limit of 32.0 A"
    assert str(got[2]) == "22.0 kW over the limit of 20.0 kW"
