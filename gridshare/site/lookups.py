"""Lookups kept while what they index lives: a plan's rows, the site's limit
families per set of lines the cars load."""

from __future__ import annotations

from collections.abc import Mapping

from gridshare.rollout import LoadModel
from optimizer import Plan
from optimizer.site import Line, Site


class PlanRows:
    """Connector → its row in a plan (kept for the plan's life: plans are many
    connectors long, and a tuple is slow to search)."""

    def __init__(self) -> None:
        self._cached: tuple[Plan, dict[str, int]] | None = None

    def __call__(self, plan: Plan | None) -> Mapping[str, int]:
        if plan is None:
            return {}
        cached = self._cached
        if cached is None or cached[0] is not plan:
            cached = self._cached = (plan, {cid: i for i, cid in enumerate(plan.connector_ids)})
        return cached[1]


class LoadModels:
    """The site's limit families for the lines the cars load (kept per line set)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._models: dict[tuple[tuple[str, tuple[Line, ...]], ...], LoadModel] = {}

    def __call__(self, lines: Mapping[str, tuple[Line, ...]] | None) -> LoadModel:
        conns = self.site.connectors
        key = tuple(
            sorted((cid, ls) for cid, ls in (lines or {}).items() if ls != conns[cid].lines)
        )
        model = self._models.get(key)
        if model is None:
            if len(self._models) > 32:
                self._models.clear()
            model = self._models[key] = LoadModel.build(self.site, lines)
        return model
