"""Who may do what with the person index (granted at import, like every domain's)."""

from __future__ import annotations

from safecity.security import rbac

READ = "linkage:read"
"""Read person records and their links (personal data: scoped and audited)."""
REVIEW = "linkage:review"
"""Decide queued pairs; merge and unmerge persons."""
MANAGE = "linkage:manage"
"""Train and activate models; run the index over new records."""

rbac.grant("officer", READ)
rbac.grant("supervisor", READ, REVIEW)
rbac.grant("analyst", READ, REVIEW, MANAGE)
rbac.grant("admin", READ, REVIEW, MANAGE)
