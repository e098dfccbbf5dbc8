"""WSGI entry point (gunicorn -c platform/gunicorn.conf.py mlrouter.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlrouter.settings")

application = get_wsgi_application()
