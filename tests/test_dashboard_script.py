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
