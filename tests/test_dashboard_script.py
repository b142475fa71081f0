"""The dashboard's script when the service does not answer, run in Node.js with a
minimal page (no browser needed): a write says the service is not answering,
not the browser's "Failed to fetch"."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node") or shutil.which("nodejs")

HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const els = new Map();
function el(sel) {
  if (!els.has(sel)) {
    const handlers = {};
    els.set(sel, { value: "", textContent: "", className: "", dataset: {}, handlers,
      addEventListener(ev, f) { handlers[ev] = f; }, focus() {} });
  }
  return els.get(sel);
}
const store = new Map();
const ctx = {
  document: { querySelector: el, querySelectorAll: () => [] },
  window: { addEventListener() {} },
  sessionStorage: { getItem: (k) => store.get(k) || null, setItem: (k, v) => store.set(k, v),
    removeItem: (k) => store.delete(k) },
  fetch: () => Promise.reject(new TypeError("Failed to fetch")),  // nothing listens
  setTimeout: () => 0, console: { warn() {}, log() {} }, CSS: { escape: (s) => s },
  Intl, Date, Number, Math, JSON, Map, Set, Promise, Error, TypeError, Array, Object, String,
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
el("#token").value = "a-write-token";
el("#limit-group").value = "grid";
el("#limit-a").value = "300";
el("#limit-form").handlers.submit({ preventDefault() {} });
setImmediate(() => setImmediate(() => {
  const out = el("#limit-result");
  console.log(JSON.stringify({ className: out.className, text: out.textContent }));
}));
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the dashboard's script")
def test_a_write_to_a_stopped_service_says_so(tmp_path: Path) -> None:
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    script = ROOT / "gridshare" / "web" / "dashboard.js"
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(harness), str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown == {
        "className": "error",
        "text": "The service does not answer (stopped, or the network is down): reload once "
        "it is back to see whether the change was made.",
    }


MODE_HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const els = new Map();
function el(sel) {
  if (!els.has(sel)) {
    const handlers = {};
    els.set(sel, { value: "", textContent: "", className: "", dataset: {}, handlers,
      addEventListener(ev, f) { handlers[ev] = f; }, focus() {} });
  }
  return els.get(sel);
}
const calls = [];
const store = new Map();
const answer = JSON.parse(process.argv[3]);
const ctx = {
  document: { querySelector: el, querySelectorAll: () => [] },
  window: { addEventListener() {} },
  sessionStorage: { getItem: (k) => store.get(k) || null, setItem: (k, v) => store.set(k, v),
    removeItem: (k) => store.delete(k) },
  fetch: (path, opts) => {
    calls.push({ path, method: opts.method || "GET", body: opts.body || null });
    if (path !== "/api/sessions/T1") return Promise.reject(new TypeError("Failed to fetch"));
    return Promise.resolve({ ok: answer.status < 300, status: answer.status,
      text: () => Promise.resolve(JSON.stringify(answer.body)) });
  },
  setTimeout: () => 0, console: { warn() {}, log() {} }, CSS: { escape: (s) => s },
  Intl, Date, Number, Math, JSON, Map, Set, Promise, Error, TypeError, Array, Object, String,
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
el("#token").value = "a-write-token";
const select = { value: "solar", dataset: { session: "T1" },
  classList: { contains: (c) => c === "charge-mode" } };
el("#stations tbody").handlers.change({ target: select });
setImmediate(() => setImmediate(() => setImmediate(() => {
  const out = el("#mode-result");
  console.log(JSON.stringify({ calls: calls.filter((c) => c.method === "PATCH"),
    className: out.className, text: out.textContent }));
})));
"""


def _mode_change(tmp_path: Path, status: int, body: object) -> dict[str, object]:
    harness = tmp_path / "mode.js"
    harness.write_text(MODE_HARNESS)
    script = ROOT / "gridshare" / "web" / "dashboard.js"
    assert NODE is not None
    answer = json.dumps({"status": status, "body": body})
    done = subprocess.run(
        [NODE, str(harness), str(script), answer], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    shown: dict[str, object] = json.loads(done.stdout)
    return shown


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the dashboard's script")
def test_the_mode_column_patches_the_session(tmp_path: Path) -> None:
    session = {"session_id": "T1", "connector_id": "CP01/1", "charge_mode": "solar"}
    plan = {"plan_id": 7, "status": "optimal"}
    shown = _mode_change(tmp_path, 200, {"session": session, "plan": plan, "paused_sessions": []})
    assert shown["calls"] == [
        {"path": "/api/sessions/T1", "method": "PATCH", "body": '{"charge_mode":"solar"}'}
    ]
    assert shown["className"] == "ok"
    assert shown["text"] == "T1 now charges solar · plan #7 optimal"


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the dashboard's script")
def test_the_mode_column_says_a_refusal(tmp_path: Path) -> None:
    detail = [
        {"loc": ["body", "charge_mode"], "msg": "Input should be 'fast', 'solar' or 'min+solar'"}
    ]
    shown = _mode_change(tmp_path, 422, {"detail": detail})
    assert shown["className"] == "error"
    assert "'fast', 'solar' or 'min+solar'" in str(shown["text"])
