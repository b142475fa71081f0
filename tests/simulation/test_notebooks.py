"""The analysts' notebooks run end to end on a small slice (GRIDSHARE_NB_QUICK=1)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_all_seven_notebooks_are_there() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_quickstart.ipynb",
        "02_acn_strategies.ipynb",
        "03_dso_forecast.ipynb",
        "04_replanning.ipynb",
        "05_hosting_capacity.ipynb",
        "06_shared_connection.ipynb",
        "07_site_costs.ipynb",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip outputs"
    monkeypatch.setenv("GRIDSHARE_NB_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    assert os.environ["GRIDSHARE_NB_QUICK"] == "1"
