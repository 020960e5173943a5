"""The running platform: settings, database engine, session factory and event bus.

One :class:`Runtime` per process. The API keeps it on ``app.state.runtime``; the CLI and
jobs build one with :func:`build_runtime`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated
from weakref import WeakKeyDictionary

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from safecity.platform.db import make_engine, make_session_factory
from safecity.settings import Settings, get_settings

if TYPE_CHECKING:
    from safecity.platform.bus import EventBus


SETTINGS_INFO_KEY = "safecity.settings"
_settings_by_engine: WeakKeyDictionary[Engine, Settings] = WeakKeyDictionary()


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bus: EventBus | None = field(default=None)

    def __post_init__(self) -> None:
        # Code that holds only a session (the audit chain: key dir, checkpoints) finds the
        # settings of the runtime that made it; see :func:`settings_for`.
        info = {**self.sessions.kw.get("info", {}), SETTINGS_INFO_KEY: self.settings}
        self.sessions.configure(info=info)
        _settings_by_engine[self.engine] = self.settings

    def close(self) -> None:
        self.engine.dispose()


def settings_for(session: Session) -> Settings:
    """The settings of the runtime ``session`` belongs to (its factory's, else its engine's
    most recent runtime's, else :func:`get_settings`)."""
    found = session.info.get(SETTINGS_INFO_KEY)
    if isinstance(found, Settings):
        return found
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return _settings_by_engine.get(engine) or get_settings()


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or get_settings()
    engine = make_engine(settings.effective_database_url)
    return Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session per request, committed when the handler succeeds.

    Use it through :data:`DbSession`, whose ``scope="function"`` commits before the
    response is sent (a client never sees 200 for a change that failed to commit). FastAPI
    caches it per request, so authentication, authorisation and the handler share one
    transaction and audit rows commit with the change they record.
    """
    session = get_runtime(request).sessions()
    request.state.db_session = session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session, scope="function")]
