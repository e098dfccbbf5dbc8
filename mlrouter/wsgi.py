"""WSGI entry point (gunicorn -c platform/gunicorn.conf.py mlrouter.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

site = get_wsgi_application()  # sets Django up

from mlrouter.handlers import ApiHandler, dispatching  # noqa: E402 (needs Django set up)

application = dispatching(ApiHandler(), site)
