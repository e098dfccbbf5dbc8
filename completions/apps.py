from django.apps import AppConfig


class CompletionsConfig(AppConfig):
    name = "completions"
    verbose_name = "Catalog and generations"

    def ready(self) -> None:
        from core.metrics import state_feed

        from .errors import database_degraded
        from .ratelimit import redis_degraded
        from .spool import spool_pending_count

        # The outage states this app owns, as the metrics' state gauges (platform/monitoring alerts on them).
        state_feed("mlrouter_redis_fallback_active", lambda: float(redis_degraded()))
        state_feed("mlrouter_postgres_fallback_active", lambda: float(database_degraded()))
        state_feed("mlrouter_spooled_settlements", lambda: float(spool_pending_count()))
