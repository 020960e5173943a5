"""Who may do what with crowd risk (granted at import, like every domain's)."""

from __future__ import annotations

from safecity.security import rbac

READ = "crowd:read"
"""Hotspots, counts, forecasts, risks (aggregates: no personal data)."""
MANAGE = "crowd:manage"
"""Create, edit and import hotspots; train and activate models."""
INGEST = "crowd:ingest"
"""Report counts (sensor gateways, operators' feeds)."""

rbac.grant("officer", READ)
rbac.grant("supervisor", READ, MANAGE)
rbac.grant("analyst", READ)
rbac.grant("admin", READ, MANAGE)
rbac.grant("device", INGEST)
