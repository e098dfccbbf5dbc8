"""WSGI entry point (gunicorn -c platform/gunicorn.conf.py mlrouter.wsgi)."""

import os
from functools import partial

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

site = get_wsgi_application()  # sets Django up

from completions.errors import internal_error, openai_error  # noqa: E402 (needs Django set up)
from completions.pipeline import VIEWS  # noqa: E402
from completions.surfaces import SURFACES  # noqa: E402
from mlrouter.handlers import ApiHandler, ViewHandler, dispatching  # noqa: E402
from mlrouter.metrics import metrics  # noqa: E402
from mlrouter.probes import PROBES  # noqa: E402

# Every API surface's POST is served straight from WSGI (mlrouter/handlers.py), and so are the probes
# and the metrics (mlrouter/probes.py, mlrouter/metrics.py: before host validation and the HTTPS redirect);
# the rest through Django.
application = dispatching(
    ApiHandler(),
    site,
    {
        **{
            ("POST", f"/v1/{s.path}"): ViewHandler(
                VIEWS[s.path], partial(internal_error, render=s.error_body or openai_error), surface=s.name
            )
            for s in SURFACES
        },
        **PROBES,
        ("GET", "/metrics"): metrics,
    },
)
