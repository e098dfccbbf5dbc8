"""The documentation site: one view renders any page in either language."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .context import docs_context
from .pages import INDEX, PAGES, docs_url, page_get
from .rendering import markdown_html, page_markdown

UI = {
    "ru": {
        "site": "Документация ML Router",
        "contents": "Разделы",
        "on_this_page": "На этой странице",
        "other_language": "English",
        "other_lang": "en",
        "skip": "Перейти к содержанию",
    },
    "en": {
        "site": "ML Router documentation",
        "contents": "Contents",
        "on_this_page": "On this page",
        "other_language": "Русский",
        "other_lang": "ru",
        "skip": "Skip to content",
    },
}


def page(request: HttpRequest, lang: str, slug: str = INDEX) -> HttpResponse:
    """Render a docs page; the index has its own URL, so /docs/index/ redirects there."""
    if slug == INDEX and request.resolver_match and request.resolver_match.url_name.startswith("page"):
        return redirect(docs_url(INDEX, lang), permanent=True)
    found = page_get(slug)
    if found is None:
        raise Http404(f"No docs page {slug!r}.")
    rendered = markdown_html(page_markdown(found, lang, docs_context(lang=lang, request=request)))
    ui = UI[lang]
    response = render(
        request,
        "docs/page.html",
        {
            "lang": lang,
            "ui": ui,
            "page": found,
            "title": found.title(lang),
            "body": rendered.html,
            "toc": [item for item in rendered.toc if item["level"] == 2],
            "nav": [
                {"title": p.title(lang), "url": docs_url(p.slug, lang), "current": p.slug == found.slug} for p in PAGES
            ],
            "this_url": docs_url(found.slug, lang),
            "other_url": docs_url(found.slug, ui["other_lang"]),
            "ru_url": docs_url(found.slug, "ru"),
            "en_url": docs_url(found.slug, "en"),
        },
    )
    response["Cache-Control"] = "public, max-age=60"
    return response
