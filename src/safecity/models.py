"""Imports every table module so that ``Base.metadata`` is complete (Alembic, tests)."""

from safecity.accidents import models as accidents_models
from safecity.alerts import models as alerts_models
from safecity.cases import models as cases_models
from safecity.cases import reviews_models as cases_reviews_models
from safecity.cases import work_models as cases_work_models
from safecity.crowd import models as crowd_models
from safecity.dispatch import models as dispatch_models
from safecity.disputes import models as disputes_models
from safecity.eservices import models as eservices_models
from safecity.eservices import registry_models as eservices_registry_models
from safecity.fraud import models as fraud_models
from safecity.linkage import models as linkage_models
from safecity.orgs import models as orgs_models
from safecity.platform import bus_memory as bus_models
from safecity.platform import consumers as consumer_models
from safecity.platform import jobs as jobs_models
from safecity.platform import notify as notify_models
from safecity.platform import outbox as outbox_models
from safecity.platform import timeline as timeline_models
from safecity.security import audit as audit_models
from safecity.security import models as security_models
from safecity.sensing import models as sensing_models
from safecity.sensing import ops_models as sensing_ops_models
from safecity.sensing import partition_models as sensing_partition_models

__all__ = [
    "accidents_models",
    "alerts_models",
    "audit_models",
    "bus_models",
    "cases_models",
    "cases_reviews_models",
    "cases_work_models",
    "consumer_models",
    "crowd_models",
    "dispatch_models",
    "disputes_models",
    "eservices_models",
    "eservices_registry_models",
    "fraud_models",
    "jobs_models",
    "linkage_models",
    "notify_models",
    "orgs_models",
    "outbox_models",
    "security_models",
    "sensing_models",
    "sensing_ops_models",
    "sensing_partition_models",
    "timeline_models",
]
