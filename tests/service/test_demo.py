"""The live demo runs by itself, stops by itself and respects the DSO's cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridshare.commands import demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_and_writes_its_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = demo.main(
        [
            "--config",
            str(ROOT / "examples" / "depot.toml"),
            "--duration",
            "6",
            "--speed",
            "300",
            "--no-live",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "largest excess of limits in force over capacity: 0.0 A" in out
    assert (tmp_path / "demo.png").stat().st_size > 10_000
