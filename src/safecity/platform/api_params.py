"""Path parameters every domain's routes share: record ids and workflow transition names.

A malformed id or transition name fails validation (422 problem+json) before the handler
runs, so no handler ever looks up a value that cannot exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

__all__ = ["RecordId", "TransitionName"]

RecordId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
"""The id of a record (``platform.db.new_id``)."""

TransitionName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
"""The name of a workflow transition (``platform.workflow``)."""
