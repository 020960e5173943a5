"""The ceiling for ``portal_lookup.py``: a bare FastAPI point lookup of a case by number
(psycopg 3, one connection per worker thread; no audit, no rate limit, no timeline, no
middleware). asyncpg is not a project dependency, so this stands in for "FastAPI +
asyncpg". Run by uvicorn: ``uvicorn _portal_bare:create_app --factory`` with
``PORTAL_BARE_DSN`` set.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

_local = threading.local()


class LookupIn(BaseModel):
    number: str
    code: str


def _conn() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["PORTAL_BARE_DSN"], autocommit=True)
        _local.conn = conn
    return conn


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/portal/lookup")
    def lookup(body: LookupIn) -> Any:
        row = (
            _conn()
            .execute("SELECT id, state, org_id FROM cases WHERE number = %s", (body.number,))
            .fetchone()
        )
        if row is None:
            return JSONResponse({"detail": "no case"}, status_code=404)
        return {"id": row[0], "stage": row[1], "unit": row[2]}

    return app
