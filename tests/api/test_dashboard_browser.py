"""The dashboard in headless Chromium, against a running service with simulated stations.

The service (`LiveService`: the real `Service`, the demo's in-process
stations, time running 60 times faster) plans and rolls limits out as in
production. The test loads the page, sees the chart and the station table
follow the measurements live, sets a group limit through the form with a
write token, and sees the connectors' limits drop, at the stations too. A
screenshot goes to ``test-artifacts/dashboard.png``.

Needs Debian's ``chromium`` and ``chromium-driver``; skipped (with the reason)
where they are not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.api.conftest import WRITE_TOKEN
from tests.api.live_service import WARMUP_S, LiveService, depot_cars, depot_config

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
    yield from chromium(tmp_path, monkeypatch)


def chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: str
) -> Generator[Any, None, None]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let selenium fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        *flags,
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


def test_dashboard_follows_the_service_and_sets_a_limit(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    panel_a = ("CP01/1", "CP02/1", "CP03/1")
    live = LiveService(
        depot_config(tmp_path), depot_cars, db=str(tmp_path / "live.db"), warmup_s=WARMUP_S
    )
    with live:
        browser.get(live.url + "/")
        wait_for(
            "the first snapshot",
            lambda: browser.find_element(By.CSS_SELECTOR, "body").get_attribute("data-snapshots"),
        )
        assert browser.find_element(By.ID, "site-name").text == "Test depot"
        wait_for(
            "the live stream", lambda: browser.find_element(By.ID, "live-state").text == "live"
        )
        assert "not configured" in browser.find_element(By.ID, "dso-state").text

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

        # every car of panel-a charging, then a limit on panel-a through the form
        def cp03_charging() -> dict[str, float | None] | None:
            lim = table_limits(browser)
            return lim if lim and lim["CP03/1"] else None

        before = wait_for("CP03's car to charge", cp03_charging)
        assert sum(before[c] or 0 for c in panel_a) > 30
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
            return now if sum(now[c] or 0 for c in panel_a) <= 30 + 0.2 else None

        after = wait_for("the connectors' limits to drop", dropped)
        assert any((after[c] or 0) < (before[c] or 0) for c in panel_a)

        async def at_the_stations() -> float:
            assert live.stations is not None
            return sum(live.stations.limit(c, live.now()) for c in panel_a)

        assert live.call(at_the_stations) <= 30 + 1e-6
        facts = wait_for(
            "the override on the card",
            lambda: (
                "override 30 A"
                in browser.find_element(By.CSS_SELECTOR, '.group[data-group="panel-a"] .facts').text
            ),
        )
        assert facts
        wait_for("the chart's capacity to drop", lambda: capacity_now(live.url) == 30)
        time.sleep(1.0)  # let the chart redraw with the new plan before the picture

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000

        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], json.dumps(severe, indent=1)

        # asking the DSO: the form wants a window's end, and the API's refusal shows
        # (this site's groups are known to no DSO)
        ask = browser.find_element(By.ID, "limit-ask-dso")
        ask.click()
        wait_for(
            "the form to ask for an end",
            lambda: "end of the window" in browser.find_element(By.ID, "limit-result").text,
        )
        browser.execute_script(
            "document.getElementById('limit-end').value = arguments[0]", "2099-01-01T18:00"
        )
        ask.click()
        refused = wait_for(
            "the API's answer",
            lambda: (t := browser.find_element(By.ID, "limit-result").text).startswith("409") and t,
        )
        assert "no DSO knows it" in refused, refused


def capacity_now(url: str) -> float | None:
    import httpx

    timeline = httpx.get(url + "/api/groups/panel-a/timeline", timeout=5).json()
    future = [p for p in timeline["points"] if p["planned_a"] is not None]
    value: float | None = future[0]["capacity_a"]
    return value


def spki_sha256(cert: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium names a key it trusts."""
    import base64
    import hashlib
    import subprocess

    der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"],
        check=True,
        capture_output=True,
    ).stdout
    spki = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=der, check=True, capture_output=True
    ).stdout
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_dashboard_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page, its files and the live stream over HTTPS with the site's own certificate
    (Chromium trusts that one key), under the security headers' CSP."""
    from selenium.webdriver.common.by import By

    from tests.certs import server_certificate

    cert, key = server_certificate(tmp_path)
    cfg = depot_config(tmp_path)
    cfg = cfg.model_copy(
        update={
            "server": cfg.server.model_copy(update={"http_tls_cert": cert, "http_tls_key": key})
        }
    )
    trust = f"--ignore-certificate-errors-spki-list={spki_sha256(cert)}"
    driver_gen = chromium(tmp_path, monkeypatch, trust)
    driver = next(driver_gen)
    try:
        with LiveService(cfg, depot_cars, db=str(tmp_path / "tls.db"), warmup_s=60) as live:
            assert live.url.startswith("https://127.0.0.1:")
            driver.get(live.url + "/")
            wait_for(
                "the live stream", lambda: driver.find_element(By.ID, "live-state").text == "live"
            )
            wait_for("the station table", lambda: table_limits(driver) or None)
            assert driver.execute_script("return location.protocol") == "https:"
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == [], json.dumps(severe, indent=1)
    finally:
        driver_gen.close()


SITE_ZONE = "America/Los_Angeles"
CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?:\s*([AaPp])\.?\s*[Mm]\.?)?")


def hour_of(label: str) -> int:
    """The hour a label reads, on a 24 h or a 12 h (AM/PM) clock."""
    m = CLOCK.search(label)
    assert m, label
    hour, half = int(m.group(1)), (m.group(3) or "").lower()
    if half == "p" and hour != 12:
        hour += 12
    if half == "a" and hour == 12:
        hour = 0
    return hour


def layout(driver: Any) -> dict[str, Any]:
    """The page's width against the viewport's, and where the key panels are."""
    result: dict[str, Any] = driver.execute_script(
        """const box = (sel) => {
             const el = document.querySelector(sel);
             if (!el) return null;
             const r = el.getBoundingClientRect();
             return {left: r.left, right: r.right, width: r.width, height: r.height,
                     shown: getComputedStyle(el).display !== 'none'};
           };
           return {viewport: window.innerWidth,
                   page: document.documentElement.scrollWidth,
                   body: document.body.scrollWidth,
                   panels: Object.fromEntries(['#groups-section', '#limit-section',
                     '#stations-section', '.group .chart canvas', '.group .bars .bar',
                     '#stations tbody tr'].map((s) => [s, box(s)]))};"""
    )
    return result


def test_dashboard_on_a_laptop_and_a_phone_in_the_site_time(browser: Any, tmp_path: Path) -> None:
    """At 1400×900 and 390×844: nothing wider than the screen, the key panels
    shown, and the chart's time axis in the site's zone (not the browser's or UTC)."""
    from zoneinfo import ZoneInfo

    from selenium.webdriver.common.by import By

    cfg = depot_config(tmp_path)
    site = cfg.site.model_copy(
        update={"site": cfg.site.site.model_copy(update={"timezone": SITE_ZONE})}
    )
    cfg = cfg.model_copy(update={"site": site})
    zone = ZoneInfo(SITE_ZONE)
    with LiveService(cfg, depot_cars, db=str(tmp_path / "tz.db"), warmup_s=WARMUP_S) as live:
        for width, height in ((1400, 900), (390, 844)):
            browser.set_window_size(width, height)
            browser.get(live.url + "/")
            wait_for("the station table", lambda: table_limits(browser) or None)
            wait_for("the panel-a chart", lambda: chart_state(browser, "panel-a"))
            axis = wait_for(
                "the chart's time axis",
                lambda: browser.execute_script(
                    """const el = document.querySelector('.group[data-group="panel-a"] .chart');
                       return el && el.dataset.axisLabels
                         ? [JSON.parse(el.dataset.axisTimes), JSON.parse(el.dataset.axisLabels)]
                         : null;"""
                ),
            )
            times, labels = axis
            assert len(labels) >= 2, labels
            for at, label in zip(times, labels, strict=True):
                local = datetime.fromtimestamp(at, zone)
                assert hour_of(label) == local.hour, (label, local)
            # the near view: from 3 h before now to 6 h after, in the site's hours
            now = live.now()
            span = (max(times) - min(times)) / 3600
            assert 5 <= span <= 9.5, (span, labels)
            assert min(times) >= (now - timedelta(hours=3.5)).timestamp()
            assert "America/Los_Angeles" in browser.find_element(By.ID, "clock").get_attribute(
                "title"
            )
            # a session shows by its idTag, not its transaction id
            cars = browser.execute_script(
                """return Array.from(document.querySelectorAll('#stations td.car'))
                     .map((td) => td.textContent);"""
            )
            assert any(c.startswith("tag-CP0") for c in cars), cars

            page = layout(browser)
            assert page["page"] <= page["viewport"], page
            assert page["body"] <= page["viewport"], page
            for sel, box in page["panels"].items():
                assert box is not None and box["shown"], (sel, page)
                assert box["width"] > 0 and box["height"] > 0, (sel, box)
                assert box["left"] >= -0.5 and box["right"] <= page["viewport"] + 0.5, (sel, box)
            time.sleep(0.5)
            browser.save_screenshot(f"/tmp/dashboard-{width}x{height}.png")

        # the whole horizon: a day ahead on the axis
        browser.find_element(By.CSS_SELECTOR, '#view-buttons button[data-view="all"]').click()

        def whole() -> float | None:
            times = browser.execute_script(
                """const el = document.querySelector('.group[data-group="panel-a"] .chart');
                   return JSON.parse(el.dataset.axisTimes);"""
            )
            span = (max(times) - min(times)) / 3600
            return span if span > 12 else None

        wait_for("the whole horizon", whole)
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], json.dumps(severe, indent=1)
