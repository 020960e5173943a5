"""Fixed time: the net's own static program, untouched (RESCO's FIXED baseline)."""

from __future__ import annotations

from typing import ClassVar

from safecity.traffic.controllers.base import Controller


class FixedTime(Controller):
    name: ClassVar[str] = "fixed"
    follows_program: ClassVar[bool] = True
