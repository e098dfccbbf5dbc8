"""ASGI entry point; production serving is WSGI under gevent (see README)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

application = get_asgi_application()
