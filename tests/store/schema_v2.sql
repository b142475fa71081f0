-- The tables of schema 2, as a database made before retention has them.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    id TEXT PRIMARY KEY, protocol TEXT, vendor TEXT, model TEXT, firmware TEXT,
    connected INTEGER NOT NULL DEFAULT 0, connected_at TEXT, booted_at TEXT,
    disconnected_at TEXT
);
CREATE TABLE IF NOT EXISTS connectors (
    id TEXT PRIMARY KEY, status TEXT, error_code TEXT, at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    station_id TEXT NOT NULL, transaction_id TEXT NOT NULL, session_id TEXT NOT NULL UNIQUE,
    connector_id TEXT NOT NULL, id_tag TEXT,
    started_at TEXT NOT NULL, ended_at TEXT, meter_start_wh REAL, meter_stop_wh REAL,
    energy_wh REAL, departure TEXT, energy_need_wh REAL, ev_max_a REAL, ev_min_a REAL,
    stop_reason TEXT, offline INTEGER NOT NULL DEFAULT 0, priority REAL,
    PRIMARY KEY (station_id, transaction_id)
);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (connector_id) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS sessions_tag ON sessions (id_tag, ended_at);
CREATE TABLE IF NOT EXISTS meter_last (
    connector_id TEXT PRIMARY KEY, at TEXT NOT NULL, transaction_id TEXT,
    current_json TEXT, offered_a REAL, power_w REAL, energy_wh REAL, soc_pct REAL
);
CREATE TABLE IF NOT EXISTS meter_minute (
    connector_id TEXT NOT NULL, minute TEXT NOT NULL, n INTEGER NOT NULL,
    l1_sum REAL NOT NULL, l2_sum REAL NOT NULL, l3_sum REAL NOT NULL,
    power_sum REAL NOT NULL, power_n INTEGER NOT NULL, energy_wh REAL, soc_pct REAL,
    PRIMARY KEY (connector_id, minute)
);
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, station_id TEXT NOT NULL, connector_id TEXT,
    purpose TEXT NOT NULL, transaction_id TEXT, start TEXT NOT NULL, periods_json TEXT NOT NULL,
    sent_at TEXT NOT NULL, outcome TEXT, detail TEXT, answered_at TEXT
);
CREATE TABLE IF NOT EXISTS limits_in_force (
    connector_id TEXT NOT NULL, purpose TEXT NOT NULL, start TEXT NOT NULL,
    periods_json TEXT NOT NULL, accepted_at TEXT NOT NULL, profile_id INTEGER,
    PRIMARY KEY (connector_id, purpose)
);
CREATE TABLE IF NOT EXISTS forecasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, group_id TEXT NOT NULL, kind TEXT NOT NULL,
    source TEXT NOT NULL, received_at TEXT NOT NULL, blocks_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, reason TEXT NOT NULL,
    grid_start TEXT NOT NULL, slot_minutes INTEGER NOT NULL, slots INTEGER NOT NULL,
    status TEXT NOT NULL, solve_ms REAL NOT NULL, summary_json TEXT NOT NULL,
    now_json TEXT NOT NULL, current_npy BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, detail_json TEXT NOT NULL
);
