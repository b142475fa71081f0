"""The scale benchmark runs end to end on a tiny load (it must not rot)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("ocpp_adapter.central_system")

PATH = Path(__file__).parents[2] / "benchmarks" / "ocpp_scale.py"


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
async def test_tiny_load_is_measured(version: str) -> None:
    spec = importlib.util.spec_from_file_location("ocpp_scale", PATH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ocpp_scale", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    args = bench.parser().parse_args(
        ["--stations", "5", "--duration", "1.5", "--meter-interval", "1", "--version", version]
    )
    result = await bench.run_load(args, 5, 1.5)
    assert result.accepted == 5 and result.version == version
    assert result.timeouts == 0 and result.call_errors == 0
    # five cars sampled every second
    assert 3.0 <= result.messages_per_s <= 12.0
    assert result.p99_ms is not None and result.p99_ms > 0
