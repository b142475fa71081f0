"""A site's decisions, as plain code: no clock of its own, no timers, sockets or
database. The asyncio layer (`gridshare.controller`) feeds it events and the
time, and carries out what it decides.

    state            SiteState: stations and running sessions; apply(event) → effects
    operator_limits  OperatorLimits: the operator's limit per group, folded into capacity
    fallback         FallbackPolicy: the TxDefault limit each station should have
    problem          ProblemBuilder, session_demand: the planning problem of a moment
    views            SiteStatus and friends: typed read views for the API
    settings         ControllerSettings
"""
