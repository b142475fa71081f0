"""OCPP-J 1.6, 2.0.1 and 2.1 central system: stations in, domain events out, limits to stations.

What the application may use of it is in `ocpp_adapter.ports`. Importing the
package is cheap: `CentralSystem` and its settings are loaded (with
``websockets``) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ocpp_adapter.central_system import (
        AdapterSettings,
        CentralSystem,
        ListenError,
        ServerSettings,
        StationInfo,
    )

__all__ = ["AdapterSettings", "CentralSystem", "ListenError", "ServerSettings", "StationInfo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ocpp_adapter import central_system

        return getattr(central_system, name)
    raise AttributeError(f"module 'ocpp_adapter' has no attribute {name!r}")
