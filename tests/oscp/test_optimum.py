"""An OPTIMUM forecast as a soft target per slot: blocks in A count on the
lines their phase names, kW as they are, a slot the time-weighted mean of
the blocks over it, no target where none lies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from forecasts.model import Block, Phase, Unit
from oscp.optimum import optimum_kw

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
M15 = timedelta(minutes=15)


def test_blocks_become_kw_per_slot() -> None:
    blocks = [
        Block(10.0, Unit.A, Phase.ALL, T0, T0 + 2 * M15),  # 3 × 230 V × 10 A = 6.9 kW
        Block(20.0, Unit.KW, Phase.ALL, T0 + 2 * M15, T0 + 3 * M15 - timedelta(minutes=5)),
        Block(16.0, Unit.A, Phase.ONE, T0 + 4 * M15, T0 + 5 * M15),
    ]
    out = optimum_kw(blocks, T0, M15, 6, 230.0)
    assert out[:2] == pytest.approx([6.9, 6.9])
    assert out[2] == pytest.approx(20.0)  # 10 of its 15 minutes, at 20 kW
    assert np.isnan(out[3]) and np.isnan(out[5])
    assert out[4] == pytest.approx(16 * 230 / 1000)
