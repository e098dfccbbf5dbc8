"""WSGI entry point (gunicorn -c platform/gunicorn.conf.py mlrouter.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

site = get_wsgi_application()  # sets Django up

from completions.apis import chat_completions, internal_error  # noqa: E402 (needs Django set up)
from mlrouter.handlers import ApiHandler, ViewHandler, dispatching  # noqa: E402

application = dispatching(
    ApiHandler(),
    site,
    {("POST", "/v1/chat/completions"): ViewHandler(chat_completions, internal_error)},
)
