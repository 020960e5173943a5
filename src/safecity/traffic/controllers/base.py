"""The controller interface. Controllers see :class:`Observation` only (no TraCI/libsumo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from safecity.platform.errors import InvalidInput
from safecity.traffic.observation import KEEP, Observation


class Controller:
    """Decides, for one signal, which green to show next (or KEEP the current one).

    The harness calls :meth:`decide` every ``decision_s`` seconds (the scenario's step when
    None) while the signal shows a green that has lasted its minimum; it then runs the yellow
    and all-red itself. ``follows_program`` controllers leave the net's own program running.
    """

    name: ClassVar[str] = "base"
    follows_program: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, float]] = {}

    def __init__(self, params: Mapping[str, float] | None = None) -> None:
        unknown = set(params or {}) - set(self.defaults)
        if unknown:
            raise InvalidInput(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        self.params = {**self.defaults, **(params or {})}
        self.decision_s: float | None = None
        self.check_params()

    def check_params(self) -> None:
        """Raise InvalidInput for impossible settings."""

    def decide(self, obs: Observation) -> int:
        return KEEP
