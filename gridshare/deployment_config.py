"""A deployment's configuration: one site file, or a folder of them.

``--config depot.toml`` is one site; ``--config sites/`` is every ``*.toml`` in
the folder, one site each (its own groups, chargers, meters, DSO, tariff). A
site's id is ``[site] id``, else the file's stem; it names the site's routes
(``/api/sites/{id}/…``) and its store:

    SQLite       one file per site: ``--db FOLDER`` → ``FOLDER/{id}.db`` (the folder
                 made if missing); without ``--db``, next to each site file
                 (``sites/north.toml`` → ``sites/north.db``)
    PostgreSQL   one schema per site in the same database (``site_{id}``, ``-`` as ``_``)

Checked at start, each with one error naming the files: ids unique, station ids
unique across the deployment, and ``[server]``/``[api]`` (the node's one OCPP
port and one HTTP port) the same in every file that sets them, except
``station_passwords`` (each station's own, merged) and ``database_url``.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from gridshare.config import ConfigError, GridshareConfig, database_url, load_config
from gridshare.deployment import SiteSpec
from gridshare.store.urls import is_postgres, sqlite_location

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_PER_STATION = {"station_passwords", "database_url"}


def site_id(config: GridshareConfig) -> str:
    """``[site] id``, else the file's stem (checked), else ``site``."""
    if config.site.site.id:
        return config.site.site.id
    if config.path is None:
        return "site"
    stem = config.path.stem
    if not SITE_ID.match(stem):
        raise ConfigError(
            f"{config.path}: the file name {stem!r} is not a site id (a-z, 0-9, '-', '_'; "
            "at most 48): rename the file or set [site] id"
        )
    return stem


def schema_of(site: str) -> str:
    """The PostgreSQL schema of a site (an identifier needing no quotes)."""
    return "site_" + site.replace("-", "_")


def with_schema(url: str, schema: str) -> str:
    """``url`` with its tables in ``schema`` (unless its options set a search_path)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "options" and "search_path" in v for k, v in query):
        return url
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _site_db(config: GridshareConfig, site: str, db: str | None, folder: bool) -> str:
    if db and is_postgres(db):
        return with_schema(db, schema_of(site)) if folder else db
    if db and folder:
        where, _ = sqlite_location(db)
        Path(where).mkdir(parents=True, exist_ok=True)  # the data folder, made at start
        return f"sqlite:///{Path(where) / f'{site}.db'}"
    url = database_url(config, db)
    return with_schema(url, schema_of(site)) if folder and is_postgres(url) else url


def _edges(configs: list[GridshareConfig]) -> GridshareConfig:
    """The node's settings: ``[server]`` and ``[api]`` of the files that set them,
    which must agree; every station's password."""
    chosen = {}
    for table in ("server", "api"):
        setting = [c for c in configs if table in c.model_fields_set]
        first = setting[0] if setting else configs[0]
        base = getattr(first, table).model_dump(exclude=_PER_STATION)
        for other in setting[1:]:
            if getattr(other, table).model_dump(exclude=_PER_STATION) != base:
                raise ConfigError(
                    f"{other.path}: [{table}] differs from {first.path}'s: the sites share "
                    f"one OCPP port and one HTTP port, so [{table}] must be the same in "
                    "every site file (station_passwords and database_url may differ)"
                )
        chosen[table] = getattr(first, table)
    passwords = {k: v for c in configs for k, v in c.server.station_passwords.items()}
    server = chosen["server"].model_copy(update={"station_passwords": passwords})
    return configs[0].model_copy(update={"server": server, "api": chosen["api"]})


def load_deployment(
    path: str | Path, db: str | None = None
) -> tuple[list[SiteSpec], GridshareConfig]:
    """The sites of ``path`` (a site file, or a folder of them) with their stores'
    URLs, and the configuration of the node's ports (see the module)."""
    p = Path(path)
    if not p.is_dir():
        config = load_config(p)
        return [SiteSpec(site_id(config), config, database_url(config, db))], config
    files = sorted(f for f in p.glob("*.toml") if f.is_file())
    if not files:
        raise ConfigError(f"{p}: no site files (*.toml) in the folder")
    configs = [load_config(f) for f in files]
    specs: list[SiteSpec] = []
    ids: dict[str, Path] = {}
    schemas: dict[str, Path] = {}
    stations: dict[str, Path] = {}
    for config, file in zip(configs, files, strict=True):
        sid = site_id(config)
        if sid in ids:
            raise ConfigError(f"{file}: site id {sid!r} is also {ids[sid]}'s")
        if schema_of(sid) in schemas:
            raise ConfigError(
                f"{file}: site id {sid!r} and {schemas[schema_of(sid)]}'s differ only by "
                "'-' and '_': they would share a PostgreSQL schema"
            )
        ids[sid] = schemas[schema_of(sid)] = file
        for charger in config.site.chargers:
            if charger.id in stations:
                raise ConfigError(
                    f"station id {charger.id!r} is in both {stations[charger.id]} and {file}: "
                    "station ids must be unique across the deployment"
                )
            stations[charger.id] = file
        specs.append(SiteSpec(sid, config, _site_db(config, sid, db, folder=True)))
    edges = _edges(configs)
    if len(specs) > 1 and edges.server.allow_unknown_stations:
        raise ConfigError(
            f"{p}: [server] allow_unknown_stations: with several sites a station must be "
            "one site's (listed in its file)"
        )
    return specs, edges
