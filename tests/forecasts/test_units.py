"""OSCP units and phases become the site's per-line limits, never looser."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecasts import Block, InvalidForecast, Limit, Phase, Unit, block_limit, normalize

from .helpers import block, minutes

V = 230.0


@pytest.mark.parametrize(
    ("cap", "unit", "phase", "expected"),
    [
        (32, Unit.A, Phase.ALL, Limit(limit_a=32)),
        (32, Unit.A, Phase.ONE, Limit(limit_a=32)),
        (32, Unit.A, Phase.UNKNOWN, Limit(limit_a=32)),
        (69_000, Unit.W, Phase.ALL, Limit(limit_kw=69)),
        (69, Unit.KW, Phase.THREE, Limit(limit_kw=69)),
        (69, Unit.KW, Phase.UNKNOWN, Limit(limit_kw=69)),
        (23, Unit.KW, Phase.ONE, Limit(limit_a=100)),
        (46, Unit.KW, Phase.TWO, Limit(limit_a=100)),
    ],
)
def test_table(cap: float, unit: Unit, phase: Phase, expected: Limit) -> None:
    got = block_limit(block(cap, 0, 15, unit, phase), V)
    assert got.limit_a == pytest.approx(expected.limit_a)
    assert got.limit_kw == pytest.approx(expected.limit_kw)


def test_energy_is_average_power_over_the_block() -> None:
    assert normalize(block(10, 0, 30, Unit.KWH)).capacity == pytest.approx(20.0)
    assert normalize(block(5000, 0, 15, Unit.WH)).capacity == pytest.approx(20.0)
    assert normalize(block(5000, 0, 15, Unit.WH)).unit is Unit.KW
    assert block_limit(block(10, 0, 60, Unit.KWH, Phase.ONE), V).limit_a == pytest.approx(
        10_000 / V
    )


def test_invalid_blocks() -> None:
    with pytest.raises(InvalidForecast):
        block(-1, 0, 15)
    with pytest.raises(InvalidForecast):
        block(1, 15, 15)
    with pytest.raises(InvalidForecast):
        Block(1, Unit.A, Phase.ALL, minutes(0).replace(tzinfo=None), minutes(15))
    with pytest.raises(InvalidForecast):
        block(math.nan, 0, 15)


fractions = st.lists(st.floats(0, 1), min_size=3, max_size=3)


@given(
    cap=st.floats(0, 1e6),
    unit=st.sampled_from(list(Unit)),
    phase=st.sampled_from(list(Phase)),
    minutes_long=st.integers(1, 600),
    voltage=st.floats(100, 400),
    frac=fractions,
)
def test_conversion_is_never_more_permissive(
    cap: float, unit: Unit, phase: Phase, minutes_long: int, voltage: float, frac: list[float]
) -> None:
    """Any per-line currents the limit allows keep the block under every reading of
    its phase (``phase N`` or ``N phases``)."""
    b = block(cap, 0, minutes_long, unit, phase)
    lim = block_limit(b, voltage)
    # the largest currents allowed: each line up to limit_a, the total up to limit_kw
    per_line = [f * (lim.limit_a if math.isfinite(lim.limit_a) else 1e6) for f in frac]
    total_kw = voltage * sum(per_line) / 1000
    if math.isfinite(lim.limit_kw) and total_kw > lim.limit_kw:
        scale = lim.limit_kw / total_kw
        per_line = [a * scale for a in per_line]
    i1, i2, i3 = per_line
    kw = [voltage * a / 1000 for a in per_line]
    tol = 1e-6 * max(1.0, cap)
    n = normalize(b)
    if unit is Unit.A:
        assert max(per_line) <= cap + tol
        return
    p = n.capacity
    if phase is Phase.ONE:
        assert kw[0] <= p + tol and max(kw) <= p + tol
    elif phase is Phase.TWO:
        assert kw[1] <= p + tol and kw[0] + kw[1] <= p + tol
    elif phase is Phase.THREE:
        assert kw[2] <= p + tol and sum(kw) <= p + tol
    else:
        assert sum(kw) <= p + tol
    assert i1 >= 0 and i2 >= 0 and i3 >= 0
