"""What a site pays and emits: the ``[tariff]`` and ``[carbon]`` tables
(`config`), the tariff over time and the planner's `CostSignal` (`tariff`),
the billing period's peak so far from the meters, kept across restarts
(`peak`), and the bill of a realised power trace (`bill`)."""

from gridshare.errors import UserError


class TariffError(UserError, ValueError):
    """A tariff or carbon setting that cannot be used; one line naming file and field."""
