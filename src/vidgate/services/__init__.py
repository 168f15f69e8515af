"""What the API asks of the rest of vidgate, one small service per concern.

The HTTP layer holds a ``Services`` and nothing else of the process: no database
engine, no provider, no blob store. Each service is named for what it answers:

- ``jobs`` (``engine/service.py``, ``JobService``): create, read, list, delete jobs.
- ``models`` (``models.py``): the catalogue and the state of each model's deployments.
- ``media`` (``media.py``): stored files, which output a download means, signed links.
- ``keys`` (``keys.py``): the key behind a bearer secret, a tenant's webhook secret.
- ``health`` (``health.py``): whether the database answers; readiness (``/readyz``).
- ``usage`` (``usage.py``): what a project's jobs produced and cost.
- ``prices`` (``prices.py``): each project's price overrides.
- ``limits`` (``limits.py``): a project's and a key's rate limits, for the admin API.
- ``webhook_endpoints`` (``webhook_endpoints.py``): projects' webhook endpoints and
  their deliveries.
- ``budgets`` (``budgets.py``): budgets, as the admin API and the CLI set and read them.
- ``accounts`` (``accounts.py``): projects, their keys and the audit log (admin API).
- ``retention`` (``retention.py``): how long each project keeps its videos' media.
- ``metrics`` (``metrics.py``): ``/metrics``, the process's and the cluster's.
- ``details`` (``video_details.py``): one video with its request, history, outputs and
  webhook deliveries (the web console's detail page).

``runtime.open_runtime`` builds them once per process. The records they return are
those of ``core/jobs.py`` and ``core/keys.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidgate.engine.service import JobService
from vidgate.services.accounts import AccountService
from vidgate.services.budgets import BudgetService
from vidgate.services.health import HealthService
from vidgate.services.keys import KeyService
from vidgate.services.limits import LimitService
from vidgate.services.media import MediaService
from vidgate.services.metrics import MetricsService
from vidgate.services.models import ModelService
from vidgate.services.prices import PriceService
from vidgate.services.retention import RetentionService
from vidgate.services.usage import UsageService
from vidgate.services.video_details import VideoDetailsService
from vidgate.services.webhook_endpoints import EndpointService


@dataclass(frozen=True, slots=True)
class Services:
    jobs: JobService
    models: ModelService
    media: MediaService
    keys: KeyService
    health: HealthService
    usage: UsageService
    prices: PriceService
    limits: LimitService
    webhook_endpoints: EndpointService
    budgets: BudgetService
    accounts: AccountService
    # storage (issue 14)
    retention: RetentionService
    metrics: MetricsService
    # console-api (issue 15)
    details: VideoDetailsService
