"""The controller's lookups stay as large as the site, however long it runs:
one-phase cars coming and going make ever new line sets."""

from __future__ import annotations

import random

from gridshare.site.lookups import MAX_LOAD_MODELS, LoadModels
from optimizer.site import Line

from .sites import small_depot


def test_ten_thousand_line_sets_keep_a_bounded_number_of_models() -> None:
    site = small_depot(8)
    models = LoadModels(site)
    rng = random.Random(5)
    cids = list(site.connectors)
    for _ in range(10_000):
        one_phase = rng.sample(cids, rng.randrange(len(cids)))
        lines = {cid: (Line.L1,) for cid in one_phase}
        current = models(lines)
        assert len(models) <= MAX_LOAD_MODELS
        # the set in use is kept: asked again, the same model comes back
        assert models(dict(lines)) is current


def test_the_sets_in_use_stay_while_others_come_and_go() -> None:
    site = small_depot(8)
    models = LoadModels(site)
    cids = list(site.connectors)
    usual = models(None)
    for k in range(100):
        models({cids[k % len(cids)]: (Line.L2,)})
        assert models(None) is usual  # used every time: never the least recent
