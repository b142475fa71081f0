"""Safe rollout of a plan to stations (invariant 1 of the design).

The limits a plan wants must reach the stations one message at a time, and
some stations answer late, refuse, or never answer. This module keeps the sum
of the limits that *may* be in force within every group's capacity at every
moment of a rollout:

* `LimitBook` knows, per connector, the limit last accepted, the limits sent
  but not confirmed (a timeout may or may not have taken effect) and the
  fallback (TxDefault) limit in force there: the connector's own if it has
  one, else the station's (connector 0). Its *worst case* is the pointwise
  maximum of all of these: what the connector may draw whatever happened.
  A connector without a running transaction counts at its fallback limit
  (``count_idle``: a car may plug in and draw it before the next plan) or,
  if the service chooses so, at nothing. With ``count_idle`` a running
  transaction counts at its fallback limit too: the moment it ends, that is
  the limit in force, before any plan can follow.
* It also knows the lines each profile was sent for (the lines the car was
  counted on then). When a car is learned to load fewer lines, its profile
  in force still limits the old ones: until a profile for the fewer lines is
  accepted, the rollout counts it on the old lines too (`LimitBook.wider_lines`)
  and sends it that profile first, with the lowerings, at most as high as
  before; the raisings then see the lines it left.
* `plan_rollout` turns a plan's targets into two steps: first every lowering
  (for a schedule that goes down in some slots and up in others, the pointwise
  minimum of old and new), then the raisings. Small changes are skipped
  (hysteresis: only the next ``near_slots`` slots count, later ones follow at
  the slot boundaries) when keeping the old limit is still within capacity. A
  running transaction without a profile of its own always gets one.
* `run_rollout` sends the lowerings (transaction profiles and connectors'
  own fallback limits), waits for every answer, and only then sends each
  raising that, added to the worst case of everything else, still fits every
  limit it loads in every slot. A raising that does not fit is
  withheld and the next plan sorts it out. A station that has not answered
  within ``answer_timeout_s`` counts as not answering.
* A connector whose station refuses, does not answer or asks us to wait
  (RateLimitExceeded) is *pinned*: the next plan reserves its worst case
  (``fixed_load_a``) and leaves it alone until the pin expires.

Everything but `run_rollout` is pure; `run_rollout` talks to a
`StationGateway` (the OCPP adapter in production, a fake in tests).

Where each part lives: `schedule` (a limit over time and its profile),
`load` (which limit families each connector loads), `book` (the limits that
may be in force), `steps` (the plan of a rollout), `runner` (`run_rollout`)
and `fallback` (the stations' fallback limits).
"""

from gridshare.rollout.book import ConnectorLimits, LimitBook, PinReason
from gridshare.rollout.fallback import fallback_limits, fallback_spec
from gridshare.rollout.load import LoadModel
from gridshare.rollout.runner import (
    Answers,
    DefaultBuilder,
    RolloutReport,
    Sending,
    SpecBuilder,
    StationGateway,
    run_rollout,
)
from gridshare.rollout.schedule import EPS, LimitSchedule, schedule_from_spec
from gridshare.rollout.steps import Hysteresis, RolloutSteps, plan_rollout, raise_fits

__all__ = [
    "EPS",
    "Answers",
    "ConnectorLimits",
    "DefaultBuilder",
    "Hysteresis",
    "LimitBook",
    "LimitSchedule",
    "LoadModel",
    "PinReason",
    "RolloutReport",
    "RolloutSteps",
    "Sending",
    "SpecBuilder",
    "StationGateway",
    "fallback_limits",
    "fallback_spec",
    "plan_rollout",
    "raise_fits",
    "run_rollout",
    "schedule_from_spec",
]
