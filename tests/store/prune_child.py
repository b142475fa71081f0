"""Runs retention steps over a database until told to stop by a kill.

    python -m tests.store.prune_child DB_URL NOW_ISO

Prints ``STEP <job>`` after each step and ``DONE`` once nothing is left.
"""

from __future__ import annotations

import sys
from datetime import datetime

from gridshare.retention import Retention, RetentionConfig

if __name__ == "__main__":
    path, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    config = RetentionConfig(raw_meter_values="1h", events="1d", plans="2d")
    retention = Retention(path, config)
    while not (report := retention.prune_step(now)).done:
        print("STEP", report.job, flush=True)
    print("DONE", flush=True)
