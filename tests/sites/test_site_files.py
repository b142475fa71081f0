"""A folder of site files: ids, stores, and what is refused at start."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from gridshare.commands import serve
from gridshare.config import ConfigError
from gridshare.deployment_config import load_deployment, schema_of, with_schema
from tests.sites.helpers import site_toml, write_sites


def test_each_file_is_a_site_with_its_own_sqlite_file(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {
            "north": site_toml("North depot", 32, ("N1", "N2")),
            "b": site_toml("South depot", 16, ("S1",), extra='id = "south"'),
        },
    )
    sites, edges = load_deployment(folder, str(tmp_path / "data"))
    assert [s.id for s in sites] == ["south", "north"]  # files in name order: b.toml first
    assert [s.db_url for s in sites] == [
        f"sqlite:///{tmp_path / 'data' / 'south.db'}",
        f"sqlite:///{tmp_path / 'data' / 'north.db'}",
    ]
    assert {c.id for c in sites[1].config.site.chargers} == {"N1", "N2"}
    assert edges.server.ocpp_port == 0


def test_without_db_each_site_keeps_its_file_next_to_it(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {"a": site_toml("A", 32, ("A1",)), "b": site_toml("B", 32, ("B1",))},
    )
    sites, _ = load_deployment(folder)
    assert [s.db_url for s in sites] == [
        f"sqlite:///{folder / 'a.db'}",
        f"sqlite:///{folder / 'b.db'}",
    ]


def test_postgresql_gives_each_site_a_schema_of_the_same_database(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {"depot-a": site_toml("A", 32, ("A1",)), "b": site_toml("B", 32, ("B1",))},
    )
    url = "postgresql://gs:secret@127.0.0.1:5432/gridshare?connect_timeout=3"
    sites, _ = load_deployment(folder, url)
    for site in sites:
        parts = urlsplit(site.db_url)
        assert parts.path == "/gridshare" and parts.password == "secret"
        query = parse_qs(parts.query)
        assert query["connect_timeout"] == ["3"]
        assert query["options"] == [f"-csearch_path={schema_of(site.id)}"]
    assert {schema_of(s.id) for s in sites} == {"site_b", "site_depot_a"}
    # a URL that names its schema already keeps it
    named = "postgresql://h/db?options=-csearch_path%3Dmine"
    assert with_schema(named, "site_x") == named


def test_a_station_id_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {"north": site_toml("N", 32, ("N1", "CP7")), "south": site_toml("S", 16, ("CP7",))},
    )
    with pytest.raises(ConfigError) as e:
        load_deployment(folder)
    message = str(e.value)
    assert "'CP7'" in message
    assert str(folder / "north.toml") in message and str(folder / "south.toml") in message


def test_serve_says_so_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {"north": site_toml("N", 32, ("CP7",)), "south": site_toml("S", 16, ("CP7",))},
    )
    assert serve.main(["--config", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "station id 'CP7' is in both" in err and "unique across the deployment" in err


def test_two_files_naming_one_site_id_are_refused(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {"a": site_toml("A", 32, ("A1",), extra='id = "x"'), "x": site_toml("X", 32, ("X1",))},
    )
    with pytest.raises(ConfigError, match=r"site id 'x' is also .*a\.toml's"):
        load_deployment(folder)


def test_a_file_name_that_is_no_site_id_asks_for_one(tmp_path: Path) -> None:
    folder = write_sites(tmp_path / "sites", {"North Depot": site_toml("N", 32, ("N1",))})
    with pytest.raises(ConfigError, match=r"not a site id .* set \[site\] id"):
        load_deployment(folder)


def test_the_ports_must_be_the_same_in_every_file(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {
            "a": site_toml("A", 32, ("A1",)),
            "b": site_toml("B", 32, ("B1",), server="meter_interval_s = 30"),
        },
    )
    with pytest.raises(ConfigError, match=r"b\.toml: \[server\] differs from .*a\.toml's"):
        load_deployment(folder)


def test_station_passwords_are_each_files_own_and_all_kept(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {
            "a": site_toml("A", 32, ("A1",), server='station_passwords = { A1 = "pa-1" }'),
            "b": site_toml("B", 32, ("B1",), server='station_passwords = { B1 = "pb-1" }'),
        },
    )
    _, edges = load_deployment(folder)
    passwords = {k: v.get_secret_value() for k, v in edges.server.station_passwords.items()}
    assert passwords == {"A1": "pa-1", "B1": "pb-1"}


def test_unknown_stations_cannot_be_allowed_with_several_sites(tmp_path: Path) -> None:
    folder = write_sites(
        tmp_path / "sites",
        {
            "a": site_toml("A", 32, ("A1",), server="allow_unknown_stations = true"),
            "b": site_toml("B", 32, ("B1",), server="allow_unknown_stations = true"),
        },
    )
    with pytest.raises(ConfigError, match="allow_unknown_stations"):
        load_deployment(folder)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    with pytest.raises(ConfigError, match="no site files"):
        load_deployment(tmp_path / "none")


def test_the_example_folder_is_two_sites(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    sites, edges = load_deployment(root / "examples" / "sites", str(tmp_path))
    assert [s.id for s in sites] == ["north", "south"]
    assert edges.server.ocpp_port == 9000 and len(edges.api.tokens) == 1
