"""The central system's handshake against probes: refusals that do not tell which
ids exist, security profile 3 with passwords configured, failed TLS handshakes
logged, TLS 1.2 with AEAD suites only, station strings logged escaped.
Real sockets on loopback, real certificates."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from ocpp_adapter.rpc import OcppVersion
from ocpp_adapter.tls import server_tls_context
from tests.certs import expired_certificate, server_certificate, station_certificates
from tests.ocpp.helpers import TS, basic, make_config, running, station

PASSWORD = "correct-horse-battery"
CS_LOG = "ocpp_adapter.central_system"
FAILED = (ssl.SSLError, InvalidMessage, ConnectionClosed, OSError)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return server_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def station_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("station-certs")
    certs = station_certificates(d, ("CP1", "CP2"))
    certs["expired"] = expired_certificate(d, certs["ca"], "CP1")
    return certs


def client_tls(
    server_cert: Path, cert: tuple[Path, Path] | None = None, ciphers: str | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(server_cert))
    if cert is not None:
        ctx.load_cert_chain(*map(str, cert))
    if ciphers is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
    return ctx


async def refusal(cs: Any, sid: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
    with pytest.raises(InvalidStatus) as err:
        async with station(cs, sid, **kwargs):
            pass
    r = err.value.response
    return (
        r.status_code,
        bytes(r.body or b""),
        {k: v for k, v in r.headers.raw_items() if k != "Date"},
    )


# --- which ids exist -----------------------------------------------------------------------


@pytest.mark.parametrize("allow_unknown", [False, True])
async def test_without_credentials_known_and_unknown_ids_are_refused_alike(
    allow_unknown: bool,
) -> None:
    config = make_config(station_passwords={"CP1": PASSWORD}, allow_unknown_stations=allow_unknown)
    async with running(config) as (cs, rec):
        for headers in (None, basic("CP1", "wrong-password-123"), {"Authorization": "Bearer x"}):
            answers = {
                sid: await refusal(cs, sid, headers=headers)
                for sid in ("CP1", "CP2", "STRANGER")  # with a password, known without, unknown
            }
            assert answers["CP1"][0] == 401
            assert answers["CP1"] == answers["CP2"] == answers["STRANGER"], headers
        assert rec.events == []


async def test_profile_3_other_certificates_are_refused_alike_for_known_and_unknown_ids(
    tls_files: tuple[Path, Path], station_certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = tls_files
    config = make_config(
        tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(station_certs["ca"][0])
    )
    ctx = client_tls(cert, station_certs["CP1"])
    async with running(config) as (cs, _):
        known = await refusal(cs, "CP2", scheme="wss", ssl=ctx)
        unknown = await refusal(cs, "STRANGER", scheme="wss", ssl=ctx)
        assert known[0] == 403 and known == unknown


# --- security profile 3 --------------------------------------------------------------------


async def test_profile_3_certificate_is_the_credential_when_passwords_are_configured(
    tls_files: tuple[Path, Path], station_certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = tls_files
    config = make_config(
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(station_certs["ca"][0]),
        station_passwords={"CP1": PASSWORD, "CP2": PASSWORD},
    )
    async with running(config) as (cs, _):
        async with station(
            cs, "CP1", scheme="wss", ssl=client_tls(cert, station_certs["CP1"])
        ) as st:
            assert (await st.boot())["status"] == "Accepted"
        # Still only with its own certificate, password or not.
        ctx = client_tls(cert, station_certs["CP1"])
        assert (await refusal(cs, "CP2", scheme="wss", ssl=ctx, headers=basic("CP2", PASSWORD)))[
            0
        ] == 403
        with pytest.raises(FAILED):
            async with station(
                cs, "CP1", scheme="wss", ssl=client_tls(cert), headers=basic("CP1", PASSWORD)
            ) as st:
                await st.boot()


# --- failed TLS handshakes -----------------------------------------------------------------


async def test_failed_tls_handshakes_are_logged_with_the_peer_address(
    tls_files: tuple[Path, Path],
    station_certs: dict[str, tuple[Path, Path]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key = tls_files
    config = make_config(
        tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(station_certs["ca"][0])
    )
    cases = {
        "no certificate": (client_tls(cert), "wss", "certificate"),
        "unknown CA": (client_tls(cert, station_certs["rogue"]), "wss", "certificate"),
        "expired": (client_tls(cert, station_certs["expired"]), "wss", "expired"),
        "plain HTTP": (None, "ws", "http"),
    }
    async with running(config) as (cs, _):
        for what, (ctx, scheme, reason) in cases.items():
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=CS_LOG), pytest.raises(FAILED):
                async with station(cs, "CP1", scheme=scheme, ssl=ctx) as st:
                    await st.boot()
            warnings = [
                r.getMessage()
                for r in caplog.records
                if r.name == CS_LOG and r.levelno == logging.WARNING
            ]
            assert len(warnings) == 1, (what, warnings)
            assert warnings[0].startswith("TLS handshake with 127.0.0.1:"), what
            assert reason in warnings[0].lower(), (what, warnings[0])
        # The server still serves after all that.
        async with station(
            cs, "CP1", scheme="wss", ssl=client_tls(cert, station_certs["CP1"])
        ) as st:
            assert (await st.boot())["status"] == "Accepted"


# --- TLS 1.2 suites ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cbc", ["ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA", "AES128-SHA256"]
)
async def test_tls12_refuses_cbc_suites(
    tls_files: tuple[Path, Path], cbc: str, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = tls_files
    config = make_config(tls_cert=str(cert), tls_key=str(key))
    async with running(config) as (cs, _):
        with caplog.at_level(logging.WARNING, logger=CS_LOG), pytest.raises(OSError):
            async with station(cs, "CP1", scheme="wss", ssl=client_tls(cert, ciphers=cbc)):
                pass
    assert "failed: no shared cipher" in caplog.text


@pytest.mark.parametrize(
    "aead",
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ],
)
async def test_tls12_accepts_aead_suites(tls_files: tuple[Path, Path], aead: str) -> None:
    cert, key = tls_files
    config = make_config(tls_cert=str(cert), tls_key=str(key))
    ctx = client_tls(cert, ciphers=aead)
    async with running(config) as (cs, _), station(cs, "CP1", scheme="wss", ssl=ctx) as st:
        name, version, _ = st.ws.transport.get_extra_info("cipher")
        assert (name, version) == (aead, "TLSv1.2")
        assert (await st.boot())["status"] == "Accepted"


def test_server_context_offers_only_aead_on_tls12(
    tls_files: tuple[Path, Path], station_certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = tls_files
    ctx = server_tls_context(cert, key)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_NONE
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["aead"] for c in tls12)
    kex = [c["kea"] for c in tls12]
    assert kex == sorted(kex, key=lambda k: k != "kx-ecdhe")  # forward secret first
    # What OCPP's compliance tests ask a central system for.
    names = {c["name"] for c in tls12}
    assert {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"} <= names
    assert {"AES128-GCM-SHA256", "AES256-GCM-SHA384"} <= names
    ca = station_certs["ca"][0]
    assert server_tls_context(cert, key, ca).verify_mode is ssl.CERT_OPTIONAL
    assert server_tls_context(cert, key, ca, True).verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="CA"):
        server_tls_context(cert, key, require_client_cert=True)


# --- what stations write into our logs -----------------------------------------------------


@pytest.mark.parametrize(
    "sid",
    ["CP%0A1", "CP%0D", "CP%1B%5B2J", "CP%7F", "CP%C3%A9", "CP%E2%80%A8", "X" * 49, "a:b"],
)
async def test_station_id_outside_printable_ascii_is_refused_like_an_unknown_one(
    sid: str,
) -> None:
    async with running(make_config()) as (strict, _):
        unknown = await refusal(strict, "CP9")
    assert unknown[:2] == (404, b"Unknown charging station\n")
    async with running(make_config(allow_unknown_stations=True)) as (cs, _):
        assert await refusal(cs, sid) == unknown
        async with station(cs, "X" * 48), station(cs, "CP%20(1).a-b_c~"):
            pass


async def test_adapter_logs_station_strings_escaped(caplog: pytest.LogCaptureFixture) -> None:
    forged = "X%0AERROR%20gridshare.api%20FAKE"  # an id with a newline: refused
    config = make_config(allow_unknown_stations=True)
    sample = {"value": "1\nERROR gridshare.api: FAKE2", "measurand": "Current.Import"}
    with caplog.at_level(logging.DEBUG, logger="ocpp_adapter"):
        async with running(config) as (cs, _):
            with pytest.raises(InvalidStatus):
                async with station(cs, forged):
                    pass
            async with station(cs, "CP'1", OcppVersion.V16) as st:
                await st.boot()
                start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": TS}
                tx = (await st.call("StartTransaction", start))["transactionId"]
                data = [{"timestamp": TS, "sampledValue": [sample]}]
                stop = {"transactionId": tx, "meterStop": 5, "timestamp": TS}
                await st.call("StopTransaction", {**stop, "transactionData": data})
                await st.send_raw("{not json\nERROR gridshare.api: FAKE3")
                await st.raw.get()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("ocpp_adapter")]
    for fake in ("FAKE", "FAKE2", "FAKE3"):
        assert any(fake in m for m in ours), fake
    assert [m for m in ours if "\n" in m or "\r" in m] == []
    # the meter's line: the connector (the station's id in it) and the value quoted
    [skipped] = [m for m in ours if "FAKE2" in m and "skipped" in m]
    assert skipped.startswith('"CP\'1/1": '), skipped
