"""OCPP-J 1.6 and 2.0.1 central system: stations in, domain events out, limits to stations.

Importing the package is cheap: `CentralSystem`, `AdapterSettings` and
`StationInfo` are loaded (with ``websockets``) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocpp_adapter.central_system import AdapterSettings, CentralSystem, StationInfo

__all__ = ["AdapterSettings", "CentralSystem", "StationInfo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ocpp_adapter import central_system

        return getattr(central_system, name)
    raise AttributeError(f"module 'ocpp_adapter' has no attribute {name!r}")
