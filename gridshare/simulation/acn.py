"""ACN sites (Caltech, JPL) from ``sites.json`` to gridshare site files.

``sites.json`` lists each site's stations (phase angle, pilots) and its
electrical constraints as linear combinations of station currents. Here they
become a site model:

* phase angle 30° → lines ``L1, L2``; −90° → ``L2, L3``; 150° → ``L3, L1``
  (a 208 V line-to-line charger);
* constraints that differ only by their line (``… A/B/C`` or ``… I_a/I_b/I_c``)
  and share one limit form a candidate tree group whose stations are the union
  of their stations. The group keeps a per-line ``limit_a`` only when, for every
  line, the stations with a non-zero coefficient are exactly the group's
  stations loading that line (checked); otherwise each constraint becomes a
  weighted group. Groups nest by station-set inclusion;
* transformer *primary* constraints (coefficients 0.25 / −0.5) are no branch of
  the tree: they become weighted groups under their transformer;
* a transformer's secondary limit gives its rating (208Y/120 V secondary: three
  lines at 120 V), recorded as ``limit_kw`` so a sweep can scale it.

Every limit is written ``phasor = true``: the site's own rule, the magnitude of
a phasor sum |Σ aᵢ·Iᵢ·e^(jθᵢ)| ≤ limit, θᵢ the station's phase angle (as
acnsim's ``ChargingNetwork`` evaluates it). A tree group's line current is the
phasor sum of the pairs on that line (``I_a = I_ab − I_ca``: the sign of each
coefficient is checked against the line the pair is drawn out of); a primary
keeps its coefficients with their signs. ``exact=False`` writes the summed
magnitudes Σ|aᵢ|·Iᵢ ≤ limit instead (safe, never looser, a quarter of a
transformer lower).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridshare.errors import UserError
from optimizer.site import Group, Site

ANGLE_LINES: dict[float, tuple[str, str]] = {
    30.0: ("L1", "L2"),
    -90.0: ("L2", "L3"),
    150.0: ("L3", "L1"),
}
LETTER_LINE = {"a": "L1", "b": "L2", "c": "L3"}
SECONDARY_LINE_TO_NEUTRAL_V = 120.0
"""Line-to-neutral voltage of the transformers' 208Y/120 V secondaries."""

_LINE_SUFFIX = re.compile(r"^(?P<base>.*?)\s+(?:I_)?(?P<letter>[ABCabc])$")


class AcnSiteError(UserError, ValueError):
    """sites.json cannot be converted (unknown phase angle, malformed entry)."""


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass
class _Cluster:
    base: str
    limit_a: float
    members: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stations(self) -> frozenset[str]:
        out: set[str] = set()
        for c in self.members:
            out |= {k for k, v in c["coefficients"].items() if v != 0}
        return frozenset(out)


@dataclass
class Conversion:
    """A converted site: the site model as a TOML-ready dict, and what was decided."""

    name: str
    data: dict[str, Any]
    tree_groups: list[str]
    weighted_groups: list[str]
    transformers: dict[str, float]
    """Group id → rated kW."""
    exact: bool = True
    """Limits on phasor sums (else magnitudes summed)."""

    def site(self) -> Site:
        return Site.model_validate(self.data)


def _lines_of(evse: Mapping[str, Any]) -> tuple[str, str]:
    angle = float(evse["phase_angle_deg"])
    for a, lines in ANGLE_LINES.items():
        if abs(a - angle) < 1e-6:
            return lines
    raise AcnSiteError(f"station {evse['station_id']}: phase angle {angle} is not 30, -90 or 150")


def _is_primary(c: Mapping[str, Any]) -> bool:
    return "primary" in c["name"].lower() or any(
        abs(abs(v) - 1.0) > 1e-9 for v in c["coefficients"].values() if v != 0
    )


def convert_site(
    key: str,
    raw: Mapping[str, Any],
    *,
    slot_minutes: int = 5,
    horizon_hours: float = 12.0,
    exact: bool = True,
) -> Conversion:
    """``raw``'s site (an entry of ``sites.json``); ``exact``: its limits on
    phasor sums (``phasor = true``), else magnitudes summed."""
    evses = list(raw["evses"])
    lines = {e["station_id"]: _lines_of(e) for e in evses}
    clusters, primaries = _clusters(raw["constraints"])
    tree_clusters: list[_Cluster] = []
    weighted: list[tuple[dict[str, Any], float]] = []
    for cl in clusters:
        if _is_exact_tree_group(cl, lines):
            tree_clusters.append(cl)
        else:
            weighted.extend((c, cl.limit_a) for c in cl.members)
    tree = _Tree.nest(key, tree_clusters, frozenset(lines))
    groups = tree.groups(exact)
    weighted_groups = _weighted_groups(
        tree, [*weighted, *((p, float(p["limit_a"])) for p in primaries)], primaries, exact
    )
    groups.extend(weighted_groups)
    chargers = [_charger(e, lines[e["station_id"]], tree) for e in evses]
    chargers.sort(key=lambda ch: (ch["group"], ch["id"]))

    data = {
        "site": {
            "name": f"acn-{slug(key)}",
            "voltage_v": SECONDARY_LINE_TO_NEUTRAL_V,
            "slot_minutes": slot_minutes,
            "horizon_hours": horizon_hours,
            "timezone": "America/Los_Angeles",
        },
        "groups": groups,
        "chargers": chargers,
    }
    Site.model_validate(data)
    return Conversion(
        key, data, list(tree.ids), [g["id"] for g in weighted_groups], tree.transformers(), exact
    )


def _clusters(
    constraints: Sequence[dict[str, Any]],
) -> tuple[list[_Cluster], list[dict[str, Any]]]:
    """The constraints that differ only by their line and share a limit, together;
    and the transformer primaries, apart."""
    clusters: dict[tuple[str, float], _Cluster] = {}
    primaries: list[dict[str, Any]] = []
    for c in constraints:
        if _is_primary(c):
            primaries.append(c)
            continue
        m = _LINE_SUFFIX.match(c["name"])
        base = m.group("base") if m else c["name"]
        k = (base, float(c["limit_a"]))
        clusters.setdefault(k, _Cluster(base, float(c["limit_a"]))).members.append(c)
    return list(clusters.values()), primaries


@dataclass
class _Tree:
    """The tree groups nested by station-set inclusion, biggest first (parents
    before their children), and the group at the root."""

    key: str
    clusters: list[_Cluster]
    ids: list[str]
    root_id: str
    root_is_added: bool
    """No group holds every station: the root is a group without a limit."""
    every: frozenset[str]

    @classmethod
    def nest(cls, key: str, exact: list[_Cluster], every: frozenset[str]) -> _Tree:
        clusters = sorted(exact, key=lambda cl: (-len(cl.stations), cl.base))
        root_is_added = not (clusters and clusters[0].stations == every)
        root_id = (slug(key) or "site") if root_is_added else _group_id(clusters[0])
        ids: list[str] = []
        for cl in clusters:
            gid = _group_id(cl)
            if gid in ids:
                raise AcnSiteError(f"{key}: two groups named {gid}")
            ids.append(gid)
        return cls(key, clusters, ids, root_id, root_is_added, every)

    def transformers(self) -> dict[str, float]:
        """Group id → rated kW, of the transformers' secondaries."""
        return {
            gid: _rated_kw(cl)
            for gid, cl in zip(self.ids, self.clusters, strict=True)
            if _is_transformer(cl)
        }

    def groups(self, exact: bool) -> list[dict[str, Any]]:
        """The site's tree groups as TOML-ready dicts (a limitless root first if
        no group holds every station); ``exact``: line currents as phasor sums."""
        groups: list[dict[str, Any]] = []
        if self.root_is_added:
            groups.append(
                {"id": self.root_id, "description": f"{self.key}: site connection (no limit)"}
            )
        for i, cl in enumerate(self.clusters):
            gid = self.ids[i]
            parents = [self.ids[j] for j in range(i) if cl.stations < self.clusters[j].stations]
            parent = parents[-1] if parents else (None if gid == self.root_id else self.root_id)
            g: dict[str, Any] = {"id": gid}
            if parent is not None:
                g["parent"] = parent
            g["limit_a"] = cl.limit_a
            if exact:
                g["phasor"] = True
            if _is_transformer(cl):
                kw = _rated_kw(cl)
                g["limit_kw"] = kw
                g["description"] = f"transformer, {kw:g} kW (secondary {cl.limit_a:.2f} A per line)"
            else:
                g["description"] = f"{cl.base}: {cl.limit_a:g} A per line"
            groups.append(g)
        return groups

    def home(self, stations: frozenset[str]) -> str:
        """The smallest tree group holding every one of ``stations``."""
        best: str | None = None
        best_n = len(self.every) + 1
        for gid, cl in zip(self.ids, self.clusters, strict=True):
            if stations <= cl.stations and len(cl.stations) < best_n:
                best, best_n = gid, len(cl.stations)
        return best or self.root_id


def _is_transformer(cl: _Cluster) -> bool:
    return "secondary" in cl.base.lower() or "transformer" in cl.base.lower() or not cl.base


def _rated_kw(cl: _Cluster) -> float:
    """A transformer's rating from its secondary limit (three lines at 120 V)."""
    return round(cl.limit_a * 3 * SECONDARY_LINE_TO_NEUTRAL_V / 1000.0, 3)


def _weighted_groups(
    tree: _Tree,
    constraints: Sequence[tuple[dict[str, Any], float]],
    primaries: Sequence[dict[str, Any]],
    exact: bool,
) -> list[dict[str, Any]]:
    """One weighted group per constraint, under the smallest tree group holding
    it; ``exact``: the coefficients with their signs, on the phasor sum."""
    groups = []
    for c, limit in constraints:
        coef = {k: float(v) for k, v in c["coefficients"].items() if v != 0}
        kind = "transformer primary" if c in primaries else "constraint"
        g: dict[str, Any] = {
            "id": slug(c["name"]),
            "parent": tree.home(frozenset(coef)),
            "limit_a": float(limit),
            "weights": coef if exact else {k: abs(v) for k, v in coef.items()},
        }
        if exact:
            g["phasor"] = True
        g["description"] = f"{kind} {c['name']!r}" + ("" if exact else " (magnitudes summed)")
        groups.append(g)
    return groups


def _charger(evse: Mapping[str, Any], lines: tuple[str, str], tree: _Tree) -> dict[str, Any]:
    """One station as a charger of one connector, in the smallest group holding it."""
    sid = evse["station_id"]
    allowed = [float(a) for a in evse.get("allowed_currents_a") or []]
    con: dict[str, Any] = {
        "id": 1,
        "max_current_a": float(evse["max_current_a"]),
        "min_current_a": float(evse["min_current_a"]),
        "phases": list(lines),
        "voltage_v": float(evse["voltage_v"]),
    }
    if allowed:
        con["allowed_currents_a"] = allowed
    return {"id": sid, "group": tree.home(frozenset([sid])), "connectors": [con]}


def _group_id(cl: _Cluster) -> str:
    base = re.sub(r"\s*secondary\s*$", "", cl.base, flags=re.IGNORECASE)
    return slug(base) or "transformer"


def _is_exact_tree_group(cl: _Cluster, lines: Mapping[str, tuple[str, str]]) -> bool:
    """Every constraint of the cluster is exactly 'the phasor sum of the group's
    stations on one line' (coefficient +1 for a pair drawn out of that line, −1
    for one drawn back into it), and every line the group loads is covered."""
    stations = cl.stations
    covered: list[frozenset[str]] = []
    for c in cl.members:
        coef = {k: v for k, v in c["coefficients"].items() if v != 0}
        if any(abs(abs(v) - 1.0) > 1e-9 for v in coef.values()):
            return False
        support = frozenset(coef)
        common = set.intersection(*(set(lines[s]) for s in support)) if support else set()
        m = _LINE_SUFFIX.match(c["name"])
        if m:
            line = LETTER_LINE[m.group("letter").lower()]
            if line not in common:
                return False
            candidates = [line]
        else:
            candidates = sorted(common)
        if not any(
            support == {s for s in stations if ln in lines[s]}
            and all((coef[s] > 0) == (lines[s][0] == ln) for s in support)
            for ln in candidates
        ):
            return False
        covered.append(support)
    # a line of the group without its own constraint must be implied by one that is
    for ln in ("L1", "L2", "L3"):
        on_line = {s for s in stations if ln in lines[s]}
        if on_line and not any(on_line <= sup for sup in covered):
            return False
    return True


def load_sites_json(path: str | Path) -> dict[str, Any]:
    with Path(path).open() as f:
        data: dict[str, Any] = json.load(f)
    return data


# --- TOML output --------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return f"{v:.1f}"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


_LIMITS_NOTE = {
    True: (
        "# Limits are on phasor sums (phasor = true), as the site's own: a line's",
        "# current is |Σ ± I · e^(jθ)| over the pairs on it (I_a = I_ab − I_ca), a",
        "# primary's |Σ coefficient · I · e^(jθ)|, θ the station's phase angle.",
    ),
    False: (
        "# Every limit sums magnitudes (Σ |coefficient| · I ≤ limit): this is the safe",
        "# linear form of the site's phasor limits |Σ coefficient · I · e^(jθ)| ≤ limit;",
        "# it never allows more than the real limits do.",
    ),
}


def to_toml(conv: Conversion, source: str = "sites.json") -> str:
    d = conv.data
    out = [
        f"# ACN {conv.name} site, generated by `gridshare import-acn {source}`.",
        "# Stations are 208 V line-to-line chargers (phase angle 30° → L1-L2,",
        "# −90° → L2-L3, 150° → L3-L1).",
        *_LIMITS_NOTE[conv.exact],
        "# Transformer groups carry their rating as limit_kw; `gridshare simulate",
        "# --capacity-kw X` scales that transformer (limit_a and its primary limits by",
        "# X / rating).",
        "# Data: ACN-Data (Lee, Li, Low, e-Energy 2019), CC BY 4.0; see data/README.md.",
        "",
        "[site]",
    ]
    out += [f"{k} = {_value(v)}" for k, v in d["site"].items()]
    for g in d["groups"]:
        out += ["", "[[groups]]"]
        out += [f"{k} = {_value(v)}" for k, v in g.items()]
    for ch in d["chargers"]:
        out += ["", "[[chargers]]", f"id = {_value(ch['id'])}", f"group = {_value(ch['group'])}"]
        for con in ch["connectors"]:
            out.append("[[chargers.connectors]]")
            out += [f"{k} = {_value(v)}" for k, v in con.items()]
    return "\n".join(out) + "\n"


# --- transformer sweep ----------------------------------------------------------


def rated_kw(site: Site, group_id: str) -> float:
    g = site.group_by_id[group_id]
    if g.limit_kw is None:
        raise ValueError(f"group {group_id} has no limit_kw (rating) to scale")
    return g.limit_kw


def default_capacity_group(site: Site) -> str:
    """The group ``--capacity-kw`` scales: the root if it has a kW rating, else the
    group with the largest rating (the big transformer)."""
    if site.root.limit_kw is not None:
        return site.root.id
    rated = [g for g in site.groups if g.limit_kw is not None and g.weights is None]
    if not rated:
        raise ValueError("no group has a limit_kw to scale; give one a rating")
    return max(rated, key=lambda g: (g.limit_kw or 0.0, g.id)).id


def scale_group(site: Site, group_id: str, capacity_kw: float) -> Site:
    """The site with one rated group set to ``capacity_kw``: its limit_kw, its
    limit_a and the limits of its weighted-constraint children scaled by
    capacity / rating."""
    rating = rated_kw(site, group_id)
    f = capacity_kw / rating
    groups: list[Group] = []
    for g in site.groups:
        if g.id == group_id:
            upd: dict[str, Any] = {"limit_kw": capacity_kw}
            if g.limit_a is not None:
                upd["limit_a"] = g.limit_a * f
            g = g.model_copy(update=upd)
        elif g.weights is not None and g.parent == group_id and g.limit_a is not None:
            g = g.model_copy(update={"limit_a": g.limit_a * f})
        groups.append(g)
    return Site.model_validate({**site.model_dump(), "groups": [g.model_dump() for g in groups]})
