"""What a site pays and emits: the ``[tariff]`` and ``[carbon]`` tables
(`config`), the tariff over time and the planner's `CostSignal` (`tariff`),
the billing period's peak so far from the meters, kept across restarts
(`peak`), the bill of a realised power trace (`bill`), the service's part
(`live`: the planner's signal, the peak metered, `/api/tariff`) and the fast
re-dispatch under a peak charge (`fast_cap`)."""

from gridshare.errors import UserError


class TariffError(UserError, ValueError):
    """A tariff or carbon setting that cannot be used; one line naming file and field."""
