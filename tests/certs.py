"""Throwaway certificates for TLS tests on loopback (made with the openssl CLI).

`server_certificate`: a self-signed one for ``localhost`` / 127.0.0.1 (security
profile 2). `station_certificates`: a stations' CA, certificates it signed
whose CN is each station's id, and a self-signed ``rogue`` one (profile 3).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def server_certificate(d: Path) -> tuple[Path, Path]:
    cert, key = d / "server.pem", d / "server.key"
    _openssl("req", "-x509", *EC, "-keyout", str(key), "-out", str(cert),
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    return cert, key


def station_certificates(d: Path, names: tuple[str, ...]) -> dict[str, tuple[Path, Path]]:
    """``ca`` (its certificate and key), one per name signed by it, and ``rogue``
    (self-signed, CN the first name)."""
    ca = (d / "ca.pem", d / "ca.key")
    _openssl("req", "-x509", *EC, "-keyout", str(ca[1]), "-out", str(ca[0]),
             "-subj", "/CN=stations-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    out = {"ca": ca}
    for name in names:
        cert, key, csr = d / f"{name}.pem", d / f"{name}.key", d / f"{name}.csr"
        _openssl("req", *EC, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
                 "-CAcreateserial", "-out", str(cert), "-days", "1")  # fmt: skip
        out[name] = (cert, key)
    rogue = (d / "rogue.pem", d / "rogue.key")
    _openssl("req", "-x509", *EC, "-keyout", str(rogue[1]), "-out", str(rogue[0]),
             "-subj", f"/CN={names[0]}")  # fmt: skip
    out["rogue"] = rogue
    return out


def expired_certificate(d: Path, ca: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` signed by ``ca`` that expired in 2020."""
    cert, key, csr = d / f"{name}-expired.pem", d / f"{name}-expired.key", d / f"{name}-exp.csr"
    _openssl("req", *EC[:-2], "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    db = d / "expired-ca"
    db.mkdir(exist_ok=True)
    (db / "index.txt").touch()
    (db / "serial").write_text("01\n")
    (db / "ca.cnf").write_text(
        f"[ca]\ndefault_ca = d\n[d]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\n"
        f"serial = {db}/serial\npolicy = p\ndefault_md = sha256\n[p]\ncommonName = supplied\n"
    )
    _openssl("ca", "-config", str(db / "ca.cnf"), "-batch", "-notext", "-in", str(csr),
             "-out", str(cert), "-cert", str(ca[0]), "-keyfile", str(ca[1]),
             "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")  # fmt: skip
    return cert, key
