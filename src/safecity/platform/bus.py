"""The event bus interface (implementations: in-process and NATS JetStream)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from safecity.platform.events import Envelope

Handler = Callable[[Envelope], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...

    async def close(self) -> None: ...
