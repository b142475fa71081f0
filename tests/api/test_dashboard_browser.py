"""The dashboard in headless Chromium, against a real uvicorn and a ticking site.

It loads the page, sees the chart and the station table follow the
measurements live, sets a group limit through the form with a write token,
and sees the connectors' limits drop. A screenshot goes to
``test-artifacts/dashboard.png``.

Needs Debian's ``chromium`` and ``chromium-driver``; skipped (with the reason)
where they are not installed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gridshare.api import LiveSettings, create_api
from tests.api.conftest import WRITE_TOKEN, api_config
from tests.api.fake_backend import FakeSite
from tests.api.live_server import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 15.0) -> T:
    """Poll ``probe`` until it gives something truthy (bounded)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1700",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        yield driver
    finally:
        driver.quit()


def table_limits(driver: Any) -> dict[str, float | None]:
    rows = driver.execute_script(
        """return Array.from(document.querySelectorAll('#stations tbody tr')).map(
             tr => [tr.dataset.connector, tr.querySelector('td.limit').textContent])"""
    )
    return {cid: None if text == "–" else float(text) for cid, text in rows}


def table_draws(driver: Any) -> dict[str, str]:
    rows = driver.execute_script(
        """return Array.from(document.querySelectorAll('#stations tbody tr')).map(
             tr => [tr.dataset.connector, tr.querySelector('td.draw').textContent])"""
    )
    return dict(rows)


def chart_state(driver: Any, group: str) -> dict[str, Any] | None:
    state: dict[str, Any] | None = driver.execute_script(
        """const el = document.querySelector('.group[data-group="' + arguments[0] + '"] .chart');
           if (!el || !el.querySelector('canvas')) return null;
           return {version: Number(el.dataset.version), points: Number(el.dataset.points),
                   last: el.dataset.lastMeasured};""",
        group,
    )
    return state


def test_dashboard_follows_the_site_and_sets_a_limit(browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    fake = FakeSite()
    fake.backfill(hours=4)
    app = create_api(fake, api_config(), live=LiveSettings(min_interval_s=0.2))
    with LiveServer(app, fake, tick_s=0.5, max_ticks=400) as server:
        browser.get(server.url + "/")
        wait_for(
            "the first snapshot",
            lambda: browser.find_element(By.CSS_SELECTOR, "body").get_attribute("data-snapshots"),
        )
        assert browser.find_element(By.ID, "site-name").text == "Test depot"
        wait_for(
            "the live stream", lambda: browser.find_element(By.ID, "live-state").text == "live"
        )
        assert "online" in browser.find_element(By.ID, "dso-state").text

        # station table and charts appear, then follow the measurements
        limits = wait_for("the station table", lambda: table_limits(browser) or None)
        assert set(limits) == {"CP01/1", "CP02/1", "CP03/1", "CP04/1", "CP05/1", "CP05/2"}
        first_chart = wait_for("the panel-a chart", lambda: chart_state(browser, "panel-a"))
        assert first_chart["points"] > 96  # measured history + the planned day
        first_draws = table_draws(browser)
        wait_for("the draws to change", lambda: table_draws(browser) != first_draws)

        def chart_moved() -> bool:
            now = chart_state(browser, "panel-a")
            return bool(
                now
                and now["version"] > first_chart["version"]
                and now["last"] != first_chart["last"]
            )

        wait_for("the chart to update", chart_moved)
        for group in ("grid", "panel-a", "panel-b"):
            assert chart_state(browser, group) is not None

        # set a limit on panel-a through the form
        before = table_limits(browser)
        panel_a = ("CP01/1", "CP02/1", "CP03/1")
        assert sum(before[c] or 0 for c in panel_a) == pytest.approx(80, abs=0.2)
        Select(browser.find_element(By.ID, "limit-group")).select_by_value("panel-a")
        browser.find_element(By.ID, "limit-a").send_keys("30")
        browser.find_element(By.ID, "token").send_keys(WRITE_TOKEN)
        browser.find_element(By.ID, "limit-set").click()
        result = wait_for(
            "the form's answer",
            lambda: browser.find_element(By.ID, "limit-result").text or None,
        )
        assert result.startswith("Set on panel-a"), result

        def dropped() -> dict[str, float | None] | None:
            now = table_limits(browser)
            ok = all((now[c] or 0) < (before[c] or 0) for c in panel_a)
            return now if ok else None

        after = wait_for("the connectors' limits to drop", dropped)
        assert sum(after[c] or 0 for c in panel_a) <= 30 + 0.2
        facts = wait_for(
            "the override on the card",
            lambda: (
                "override 30 A"
                in browser.find_element(By.CSS_SELECTOR, '.group[data-group="panel-a"] .facts').text
            ),
        )
        assert facts
        wait_for("the chart's capacity to drop", lambda: capacity_now(server) == 30)
        time.sleep(1.5)  # let the chart redraw with the new plan before the picture

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000

        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], json.dumps(severe, indent=1)


def capacity_now(server: LiveServer) -> float | None:
    import httpx

    timeline = httpx.get(server.url + "/api/groups/panel-a/timeline", timeout=5).json()
    future = [p for p in timeline["points"] if p["planned_a"] is not None]
    value: float | None = future[0]["capacity_a"]
    return value
