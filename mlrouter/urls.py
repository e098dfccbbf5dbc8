"""URL map: the admin, the /v1 API, the bot webhook, the docs and (when enabled) the upstream emulator."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "ML Router"
admin.site.site_title = "ML Router admin"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("v1/", include("completions.urls")),
    path("telegram/", include("bot.urls")),
    path("docs/", include("docs.urls")),
]

# The built-in upstream emulator (see emulator/): the demo provider, no real model behind it. Test
# tooling, so it is never routed in production unless asked for (`check --deploy` warns then).
if settings.DEBUG or settings.EMULATOR_ENABLED:
    urlpatterns.append(path("emulator/", include("emulator.urls")))
