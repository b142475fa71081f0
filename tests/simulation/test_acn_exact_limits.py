"""The imported ACN sites' limits are acnsim's own: on random currents, the
load of every constraint and which constraints are broken agree with
``ChargingNetwork.constraint_current`` of acnportal's ``caltech_acn`` and
``jpl_acn``, and the summed magnitudes are never looser."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gridshare.simulation.acn import LETTER_LINE, convert_site, load_sites_json, slug
from gridshare.simulation.capacity import SiteLimits
from tests.simulation.helpers import SITES_JSON

sites = pytest.importorskip("acnportal.acnsim.network.sites")

NETWORKS = {"caltech": sites.caltech_acn, "jpl": sites.jpl_acn}
_LINE = re.compile(r"^(?P<base>.*?)\s+(?:I_)?(?P<letter>[ABCabc])$")


def _row_of(limits: SiteLimits, name: str) -> int:
    """The site's limit row of acnsim constraint ``name``: a weighted group of
    that name, else the line its last letter names on the group of its base
    (the root where the base is the transformer's bare secondary); a name
    without a letter (a pod on one line pair) is the group's first loaded line."""
    keys = {(r.group_id, r.quantity): i for i, r in enumerate(limits.rows)}
    if (slug(name), "weighted") in keys:
        return keys[(slug(name), "weighted")]
    m = _LINE.match(name)
    if m is None:
        loaded = [
            i
            for i, r in enumerate(limits.rows)
            if r.group_id == slug(name)
            and r.quantity in LETTER_LINE.values()
            and limits.matrix[i].any()
        ]
        return loaded[0]
    base = slug(re.sub(r"\s*secondary\s*$", "", m.group("base"), flags=re.IGNORECASE))
    return keys[(base or limits.site.root.id, LETTER_LINE[m.group("letter").lower()])]


@pytest.mark.parametrize("key", ["caltech", "jpl"])
def test_limits_agree_with_acnsim_on_random_currents(key: str) -> None:
    raw = load_sites_json(SITES_JSON)[key]
    limits = SiteLimits(convert_site(key, raw).site())
    summed = SiteLimits(convert_site(key, raw, exact=False).site())
    network = NETWORKS[key](basic_evse=True)
    ids = list(network.station_ids)
    cols = [limits.connector_ids.index(f"{sid}/1") for sid in ids]
    rows = [_row_of(limits, name) for name in network.constraint_index]
    assert [summed.rows[r] for r in rows] == [limits.rows[r] for r in rows]
    rng = np.random.default_rng(7)
    broken_both = broken_neither = 0
    for _ in range(400):
        # a random share of the stations at random currents, so that about
        # half the draws break some limit (scaled by a random factor)
        on = rng.random(len(ids)) < rng.uniform(0.2, 1.0)
        amps = np.where(on, rng.uniform(0.0, 32.0, len(ids)), 0.0) * rng.uniform(0.5, 4.0)
        theirs = np.asarray(network.constraint_current(amps[:, None]), dtype=complex)[:, 0]
        x = np.zeros(len(limits.connector_ids))
        x[cols] = amps
        ours = limits.load(limits.matrix, x)
        np.testing.assert_allclose(ours[rows], np.abs(theirs), rtol=1e-9, atol=1e-9)
        over_theirs = np.abs(theirs) > network.magnitudes
        over_ours = ours[rows] > limits.static[rows]
        assert list(over_ours) == list(over_theirs)
        # the rows acnsim has no twin of (a transformer's kW) never break alone
        extra = np.ones(len(limits.rows), dtype=bool)
        extra[rows] = False
        if (ours[extra] > limits.static[extra]).any():
            assert over_theirs.any()
        # magnitudes summed: never looser than the exact rule
        assert (summed.load(summed.matrix, x) >= ours - 1e-9).all()
        broken_both += int(over_theirs.any())
        broken_neither += int(not over_theirs.any())
    assert broken_both > 50 and broken_neither > 50
