"""Signal controllers behind one interface (:class:`Controller`).

Controllers must not import TraCI or libsumo (a test scans this package's imports): they
see detector readings and their own signal's state through :class:`Observation` only.
"""

from __future__ import annotations

from collections.abc import Mapping

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers.actuated import Actuated
from safecity.traffic.controllers.adaptive import SafeCityAdaptive
from safecity.traffic.controllers.base import Controller
from safecity.traffic.controllers.fixed import FixedTime
from safecity.traffic.controllers.max_pressure import MaxPressure
from safecity.traffic.controllers.webster import Webster

CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c for c in (FixedTime, Webster, Actuated, MaxPressure, SafeCityAdaptive)
}


def create(name: str, params: Mapping[str, float] | None = None) -> Controller:
    """A fresh controller for one signal."""
    try:
        cls = CONTROLLERS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown controller {name!r}; choose one of {', '.join(CONTROLLERS)}"
        ) from None
    return cls(params)


__all__ = ["CONTROLLERS", "Controller", "create"]
