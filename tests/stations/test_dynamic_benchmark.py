"""The Dynamic-profile benchmark runs end to end on a tiny load (it must not rot)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PATH = Path(__file__).parents[2] / "benchmarks" / "dynamic_profiles.py"


async def test_tiny_run_counts_both_modes() -> None:
    spec = importlib.util.spec_from_file_location("dynamic_profiles", PATH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dynamic_profiles", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    args = bench.parser().parse_args(
        ["--stations", "3", "--replans", "2", "--periods", "8", "--pull-seconds", "1.5"]
    )
    absolute = await bench.run(args, dynamic=False)
    dynamic = await bench.run(args, dynamic=True)
    # one CALL and its answer per station and re-plan, in each mode
    assert absolute["frames_by_action"] == {"SetChargingProfile": 12}
    assert dynamic["frames_by_action"] == {"UpdateDynamicSchedule": 12}
    assert dynamic["bytes_per_replan"] < absolute["bytes_per_replan"]
    assert dynamic["pulls_seen"] >= 3 and dynamic["pull_bytes"] > 0
