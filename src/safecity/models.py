"""Imports every table module so that ``Base.metadata`` is complete (Alembic, tests)."""

from safecity.orgs import models as orgs_models
from safecity.platform import outbox as outbox_models
from safecity.security import audit as audit_models
from safecity.security import models as security_models

__all__ = ["audit_models", "orgs_models", "outbox_models", "security_models"]
