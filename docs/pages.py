"""The documentation site's pages, in sidebar order, and the one function that builds a link to one.

Nothing here imports another app, so the API can link its error messages to the docs without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONTENT_DIR = Path(__file__).resolve().parent / "content"
LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
INDEX = "index"
# Where mlrouter/urls.py includes docs.urls.
MOUNT = "/docs/"


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its slug (the URL part) and its title in each language."""

    slug: str
    title_ru: str
    title_en: str

    def title(self, lang: str) -> str:
        return self.title_ru if lang == "ru" else self.title_en

    def source_path(self, lang: str) -> Path:
        """The page's source: a Django template that renders to Markdown."""
        return CONTENT_DIR / lang / f"{self.slug}.md"


PAGES: tuple[Page, ...] = (
    Page(INDEX, "Обзор", "Overview"),
    Page("quickstart", "Быстрый старт", "Quick start"),
    Page("chat-completions", "POST /v1/chat/completions", "POST /v1/chat/completions"),
    Page("messages", "Messages (Anthropic)", "Messages (Anthropic)"),
    Page("responses", "Responses (OpenAI)", "Responses (OpenAI)"),
    Page("codex", "Codex CLI", "Codex CLI"),
    Page("claude-code", "Claude Code", "Claude Code"),
    Page("cursor", "Cursor и другие OpenAI-совместимые инструменты", "Cursor and other OpenAI-compatible tools"),
    Page("streaming", "Стриминг", "Streaming"),
    Page("embeddings", "Эмбеддинги", "Embeddings"),
    Page("routing", "Маршрутизация и резервные модели", "Routing and fallbacks"),
    Page("tools", "Вызов инструментов", "Tool calling"),
    Page("structured-outputs", "JSON mode и structured outputs", "JSON mode and structured outputs"),
    Page("models", "Модели и цены", "Models and prices"),
    Page("usage", "Поле usage и стоимость", "The usage object and cost"),
    Page("rate-limits", "Лимиты запросов", "Rate limits"),
    Page("errors", "Коды ошибок", "Error codes"),
    Page("balance", "Баланс и пополнение", "Balance and top-up"),
    Page("keys", "API-ключи", "API keys"),
    Page(
        "generation",
        "GET /v1/generation, /v1/key и /v1/credits",
        "GET /v1/generation, /v1/key and /v1/credits",
    ),
    Page("bot", "Telegram-бот", "Telegram bot"),
)
_BY_SLUG = {page.slug: page for page in PAGES}


def page_get(slug: str) -> Page | None:
    """The page with this slug, or None."""
    return _BY_SLUG.get(slug)


def docs_url(slug: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The path of a docs page, e.g. docs_url("errors#insufficient_funds") == "/docs/errors/#insufficient_funds".

    `slug` may end in `#anchor`. Raises ValueError for a page or language the site does not have. Built
    without the URL resolver, so it is safe at import time too (tests/docs checks it against the URLconf).
    """
    slug, _, anchor = slug.partition("#")
    slug = slug or INDEX
    if slug not in _BY_SLUG or lang not in LANGUAGES:
        raise ValueError(f"no docs page {slug!r} in {lang!r}")
    path = MOUNT + ("" if lang == DEFAULT_LANGUAGE else f"{lang}/") + ("" if slug == INDEX else f"{slug}/")
    return f"{path}#{anchor}" if anchor else path
