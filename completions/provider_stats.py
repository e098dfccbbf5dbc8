"""How fast each provider has been lately, from its generations of the last hour: what
`provider.sort=throughput` and `provider.sort=latency` order routes by.

One aggregate query for all providers, cached per process for STATS_CACHE_SECONDS, so a request that
sorts does not query every time (and a request that does not sort never does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Aggregate, Avg, F, FloatField, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.cache import ProcessCache
from core.db import is_postgresql

from .models import Generation

STATS_WINDOW = timedelta(hours=1)
STATS_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """A provider's recent speed; None where its last hour has nothing to measure."""

    tokens_per_s: float | None  # completion tokens per second of generating
    latency_ms: float | None  # median time to the first token (to the whole answer when not streamed)


class _Median(Aggregate):
    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


_stats: ProcessCache[dict[int, ProviderStats]] = ProcessCache(
    "provider stats", ttl=STATS_CACHE_SECONDS, grace=5.0, max_entries=1
)


def provider_stats() -> dict[int, ProviderStats]:
    """Provider id -> its stats over the last hour (providers without completed generations are absent)."""
    return _stats.get("all", _load)


def _load() -> dict[int, ProviderStats]:
    first_token = Coalesce("ttft_ms", "latency_ms")
    # The median where the database has one (PostgreSQL); the mean elsewhere.
    latency = _Median(first_token) if is_postgresql() else Avg(first_token, output_field=FloatField())
    generating = F("latency_ms") - Coalesce("ttft_ms", Value(0))
    measured = Q(completion_tokens__gt=0, latency_ms__isnull=False)
    rows = (
        Generation.objects.filter(
            started_at__gte=timezone.now() - STATS_WINDOW,
            status=Generation.Status.COMPLETED,
            provider__isnull=False,
        )
        .values("provider_id")
        .annotate(
            latency=latency,
            tokens=Sum("completion_tokens", filter=measured),
            generating_ms=Sum(generating, filter=measured),
        )
        .order_by()
    )
    stats = {}
    for row in rows:
        tokens, generating_ms = row["tokens"], row["generating_ms"]
        speed = tokens * 1000 / generating_ms if tokens and generating_ms and generating_ms > 0 else None
        stats[row["provider_id"]] = ProviderStats(tokens_per_s=speed, latency_ms=row["latency"])
    return stats
