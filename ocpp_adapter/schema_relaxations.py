"""Where the schemas bundled with the ``ocpp`` package are stricter than the
official OCPP JSON schemas, and what we accept instead. One table, one place.

A certified station is tested against the official schemas; a check stricter
than those would refuse messages such a station may send. Each row of
`RELAXATIONS` names a keyword the bundled schema has and the official one
does not, and `relax` removes it before the validator is compiled. Where the
spec's prose is stricter than both, the prose is followed elsewhere (and said
so in the row).

What was compared, OCPP 1.6 (the only version with differences found):

- the 56 core schemas (``urn:OCPP:1.6:2019:12:*``, as printed in OCPP 1.6
  edition 2's JSON messages chapter) against the bundled files of the same
  names, field by field: type, enum, maxLength, required, minItems,
  additionalProperties and format. Only ``MeterValues.json`` is stricter
  (below). The bundled files are more lenient in two places, kept as they
  are: ``MeterValues`` also takes the unit ``Hertz`` and ``StopTransaction``
  also takes ``Celsius`` (the official file has only the misspelt
  ``Celcius``);
- of the 22 files of the security extension (``urn:OCPP:Cp:1.6:2020:3:*``),
  those a station sends unasked (SecurityEventNotification, SignCertificate,
  SignedFirmwareStatusNotification) and GetInstalledCertificateIds.conf were
  compared against a field-by-field summary of the official files, not the
  files themselves: identical. The rest (replies to requests we never send,
  LogStatusNotification) were not compared.

A second summary of the official core files agrees that MeterValues has no
minItems.

OCPP 2.0.1's bundled schemas are the official files (``urn:OCPP:Cp:2:2020:3``)
and are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocpp_adapter.versions import OcppVersion


@dataclass(frozen=True)
class Relaxation:
    version: OcppVersion
    action: str
    response: bool
    path: tuple[str, ...]
    """Property names from the schema's root to the node holding ``keyword``
    (``[]`` steps into an array's items)."""
    keyword: str
    why: str


RELAXATIONS: tuple[Relaxation, ...] = (
    Relaxation(
        OcppVersion.V16,
        "MeterValues",
        False,
        ("meterValue",),
        "minItems",
        "The official schema has no minItems on meterValue: `meterValue: []` is "
        "valid there. The prose gives 1..*, but an empty list carries no reading, so "
        "accepting it changes nothing, whereas refusing it makes a station retry "
        "a message it cannot mend. meterValue itself stays required.",
    ),
    Relaxation(
        OcppVersion.V16,
        "MeterValues",
        False,
        ("meterValue", "[]", "sampledValue"),
        "minItems",
        "Same for a meter value's sampledValue: no minItems in the official schema; "
        "a meter value with no samples gives no reading and is skipped.",
    ),
)


def relax(
    version: OcppVersion, action: str, response: bool, schema: dict[str, Any]
) -> dict[str, Any]:
    """``schema`` without the keywords `RELAXATIONS` lists for it (a copy; the
    argument is left as published). Raises `LookupError` if a listed keyword
    is not there, so an upgraded ``ocpp`` package cannot silently change what
    the table means."""
    rows = [
        r for r in RELAXATIONS if (r.version, r.action, r.response) == (version, action, response)
    ]
    if not rows:
        return schema
    out = _copy(schema)
    for r in rows:
        node = out
        for step in r.path:
            node = node["items"] if step == "[]" else node["properties"][step]
        if r.keyword not in node:
            raise LookupError(f"{action}: {'.'.join(r.path)} has no {r.keyword}")
        del node[r.keyword]
    return out


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
