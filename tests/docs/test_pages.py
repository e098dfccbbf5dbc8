"""The docs site as a reader meets it: every page in both languages, numbers that follow settings, live
prices, links that lead somewhere, and reference tables that agree with the code."""

from __future__ import annotations

import ast
import json
import re
from decimal import Decimal
from html import unescape
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone

from billing.services import price_set
from completions.errors import ApiError
from completions.models import Model
from completions.surfaces.chat import parse_chat_request
from core.cache import caches_clear
from docs.context import PARAM_RANGES, docs_context
from docs.errors import API_ERRORS
from docs.pages import LANGUAGES, PAGES, docs_url
from docs.rendering import EXAMPLE_LANGUAGES, code_blocks, page_markdown

from .examples import directive_parse

EVERY_PAGE = [(lang, page.slug) for page in PAGES for lang in LANGUAGES]
# Fences that are shown, not run: responses (json, checked to parse), transcripts and set-up commands.
SHOWN_LANGUAGES = ("json", "text", "shell", "toml")
ROOT = Path(settings.BASE_DIR)


def _text(html: str) -> str:
    """What a reader sees: the page without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _get(client, slug: str, lang: str) -> str:
    response = client.get(docs_url(slug, lang))
    assert response.status_code == 200, (slug, lang, response.status_code)
    return response.content.decode()


@pytest.mark.parametrize(("lang", "slug"), EVERY_PAGE)
def test_every_page_renders_with_its_title_sidebar_and_language_switch(client, demo_models, lang, slug):
    page = next(p for p in PAGES if p.slug == slug)
    other = "en" if lang == "ru" else "ru"

    html = _get(client, slug, lang)

    assert f'<html lang="{lang}">' in html
    assert re.search(rf"<title>{re.escape(page.title(lang))} — [^<]+</title>", html)
    assert f"<h1>{page.title(lang)}</h1>" in html
    for item in PAGES:
        assert f'href="{docs_url(item.slug, lang)}"' in html, item.slug
    assert f'aria-current="page">{page.title(lang)}</a>' in html
    assert f'class="lang-switch" href="{docs_url(slug, other)}"' in html
    assert "<!-- example:" not in html  # the test directives are not for readers


@pytest.mark.parametrize(("lang", "slug"), EVERY_PAGE)
def test_every_page_renders_with_an_empty_catalog(client, db, lang, slug):
    caches_clear()
    assert _get(client, slug, lang)


def test_the_price_table_says_so_when_nothing_is_on_sale(client, db):
    caches_clear()
    assert "Сейчас нет доступных моделей." in _text(_get(client, "models", "ru"))
    assert "No models are available right now." in _text(_get(client, "models", "en"))


@pytest.mark.parametrize("path", ["/docs/no-such-page/", "/docs/en/no-such-page/", "/docs/en/en/"])
def test_an_unknown_page_is_404(client, db, path):
    assert client.get(path).status_code == 404


def test_the_index_has_one_address_per_language(client, db):
    assert client.get("/docs/index/").headers["Location"] == "/docs/"
    assert client.get("/docs/en/index/").headers["Location"] == "/docs/en/"


def test_pages_use_only_our_own_stylesheet_and_no_scripts(client, db):
    html = _get(client, "index", "ru")
    assert "<script" not in html
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) == [static("docs/docs.css")]
    assert finders.find("docs/docs.css")


@pytest.mark.parametrize(("lang", "slug"), EVERY_PAGE)
def test_docs_url_is_where_the_urlconf_serves_the_page(lang, slug):
    name = ("docs:index" if slug == "index" else "docs:page") + ("" if lang == "ru" else "-en")
    assert docs_url(slug, lang) == (reverse(name) if slug == "index" else reverse(name, kwargs={"slug": slug}))


def test_docs_url_builds_paths_with_anchors_for_the_api_to_link():
    assert docs_url("errors#insufficient_funds") == "/docs/errors/#insufficient_funds"
    assert docs_url("errors#rate_limit", "en") == "/docs/en/errors/#rate_limit"
    assert docs_url("index") == "/docs/"
    assert docs_url("", "en") == "/docs/en/"
    with pytest.raises(ValueError):
        docs_url("no-such-page")
    with pytest.raises(ValueError):
        docs_url("errors", "de")


# The error messages of the API link here (402 and 429).
API_LINKS = ["errors#insufficient_funds", "errors#rate_limit", "rate-limits#rate_limit"]


@pytest.mark.parametrize("target", API_LINKS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_anchors_the_api_links_to_exist(client, db, target, lang):
    path, _, anchor = docs_url(target, lang).partition("#")
    assert f'id="{anchor}"' in client.get(path).content.decode()


# --- numbers come from settings and the catalog, not from the page sources -------------------------------

OVERRIDES = [
    ("MIN_BALANCE_USD", Decimal("0.37"), "balance", {"ru": "$0.37", "en": "$0.37"}),
    ("LOW_BALANCE_THRESHOLD_USD", Decimal("3.2"), "balance", {"ru": "умолчанию — $3.20", "en": "threshold is $3.20"}),
    ("DEFAULT_KEY_RPM", 77, "rate-limits", {"ru": "равен 77 запросам в минуту", "en": "gets 77 requests a minute"}),
    ("AUTH_CACHE_SECONDS", 7.5, "keys", {"ru": "в течение 7.5 с", "en": "within 7.5 s"}),
    ("STREAM_KEEPALIVE_SECONDS", 9.5, "streaming", {"ru": "дольше 9.5 с", "en": "more than 9.5 s"}),
    ("STREAM_DRAIN_SECONDS", 41.0, "streaming", {"ru": "до 41 с", "en": "up to 41 s"}),
    ("RESPONSES_RETENTION_DAYS", 45, "responses", {"ru": "хранится 45 дней", "en": "kept for 45 days"}),
    ("MAX_REQUEST_BYTES", 3 * 1024 * 1024, "chat-completions", {"ru": "3 МиБ (3145728 байт)", "en": "3 MiB (3145728"}),
]


@pytest.mark.parametrize(("name", "value", "slug", "shown"), OVERRIDES, ids=[o[0] for o in OVERRIDES])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_setting_changed_is_a_page_changed(client, db, settings, name, value, slug, shown, lang):
    before = _text(_get(client, slug, lang))
    assert shown[lang] not in before

    setattr(settings, name, value)

    assert shown[lang] in _text(_get(client, slug, lang))


def test_the_settings_as_they_are_show_on_the_pages(client, db):
    balance = _text(_get(client, "balance", "en"))
    assert f"at least ${settings.MIN_BALANCE_USD.quantize(Decimal('0.01'))}" in balance
    assert f"The default threshold is ${settings.LOW_BALANCE_THRESHOLD_USD.quantize(Decimal('0.01'))}" in balance
    assert f"A new key gets {settings.DEFAULT_KEY_RPM} requests a minute" in _text(_get(client, "rate-limits", "en"))


def test_no_page_source_spells_out_a_setting(db):
    reference = docs_context(lang="en")
    spelled = [reference["min_balance"], reference["low_balance_threshold"], str(settings.MAX_REQUEST_BYTES)]
    for page in PAGES:
        for lang in LANGUAGES:
            source = page.source_path(lang).read_text(encoding="utf-8")
            for value in spelled:
                assert value not in source, (page.slug, lang, value)
            assert docs_context(lang=lang)["max_request_size"] not in source, (page.slug, lang)


def test_the_price_table_shows_the_price_in_force(client, demo_models):
    assert "| `demo/chat-small` |" not in _get(client, "models", "en")  # rendered as HTML, not left as Markdown
    row = re.search(r"<td><code>demo/chat-small</code></td>(.*?)</tr>", _get(client, "models", "en"), re.S)
    assert [cell.strip() for cell in re.findall(r"<td>(.*?)</td>", row.group(1))][3:7] == ["$0.15", "$0.60", "—", "—"]

    model = Model.objects.get(public_id="demo/chat-small")
    price_set(model_id=model.pk, prompt="0.2", completion="0.8", effective_from=timezone.now())
    caches_clear()

    row = re.search(r"<td><code>demo/chat-small</code></td>(.*?)</tr>", _get(client, "models", "en"), re.S)
    assert [cell.strip() for cell in re.findall(r"<td>(.*?)</td>", row.group(1))][3:5] == ["$0.20", "$0.80"]


def test_examples_use_the_cheapest_model_on_sale(demo_models):
    assert docs_context(lang="ru")["example_model"] == "demo/chat-small"


def test_the_worked_example_adds_up(client, demo_models):
    # demo/chat-small: $0.15 and $0.60 per 1M tokens; 1200 input and 350 output tokens.
    expected = (1200 * Decimal("0.15") + 350 * Decimal("0.60")) / 1_000_000
    assert expected == Decimal("0.00039")
    assert "cost = 0.00039" in _text(_get(client, "usage", "en"))
    assert "cost = 0.00039" in _text(_get(client, "usage", "ru"))


def test_model_names_cannot_inject_html(client, demo_models):
    Model.objects.filter(public_id="demo/chat-small").update(name="<script>alert(1)</script> | x")
    caches_clear()
    html = _get(client, "models", "en")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#124; x" in html


# --- links ------------------------------------------------------------------------------------------------


def test_every_link_between_pages_leads_to_a_page_and_an_anchor_that_exist(client, demo_models):
    pages = {(lang, page.slug): _get(client, page.slug, lang) for page in PAGES for lang in LANGUAGES}
    by_path = {docs_url(slug, lang): html for (lang, slug), html in pages.items()}
    for (lang, slug), html in pages.items():
        for href in re.findall(r'href="([^"]+)"', html):
            if href.startswith(("http://", "https://", "/static/")):
                continue
            path, _, anchor = href.partition("#")
            target = by_path.get(path or docs_url(slug, lang))
            assert target is not None, f"{lang}/{slug} links to {href}"
            if anchor:
                assert f'id="{anchor}"' in target, f"{lang}/{slug} links to a missing anchor {href}"


def test_both_languages_have_the_same_sections_and_examples():
    for page in PAGES:
        ru, en = (page.source_path(lang).read_text(encoding="utf-8") for lang in ("ru", "en"))
        assert re.findall(r"\{#([\w-]+)\}", ru) == re.findall(r"\{#([\w-]+)\}", en), page.slug
        assert [b.language for b in code_blocks(ru)] == [b.language for b in code_blocks(en)], page.slug
        assert [_check_kinds(b.directive) for b in code_blocks(ru) if b.executable] == [
            _check_kinds(b.directive) for b in code_blocks(en) if b.executable
        ], page.slug


def _check_kinds(directive: str) -> list[str]:
    """A directive's checks, without the wording its `expect` patterns match (that is in each language's words)."""
    return [item if not item.startswith("expect=") else "expect" for item in directive.split()]


def test_every_fence_is_an_example_or_shown_only_and_every_example_checks_its_output():
    for page in PAGES:
        for lang in LANGUAGES:
            for block in code_blocks(page.source_path(lang).read_text(encoding="utf-8")):
                where = (page.slug, lang, block.code[:60])
                assert block.language in EXAMPLE_LANGUAGES + SHOWN_LANGUAGES, where
                if block.executable:
                    assert directive_parse(block.directive).checks > 0, where
                else:
                    assert not block.directive, where


def test_every_json_fence_is_valid_json(demo_models):
    for lang in LANGUAGES:
        context = docs_context(lang=lang)
        for page in PAGES:
            for block in code_blocks(page_markdown(page, lang, context)):
                if block.language == "json":
                    json.loads(block.code)


# --- the reference tables agree with the code --------------------------------------------------------------

SOURCES_THAT_ANSWER_ERRORS = ["completions", "accounts", "mlrouter"]


def _codes_in_source() -> set[str]:
    """Every `code="…"` the API's source passes to an error, and every DRF `default_code`."""
    codes: set[str] = set()
    for package in SOURCES_THAT_ANSWER_ERRORS:
        for path in (ROOT / package).rglob("*.py"):
            if {"migrations", "emulator", "management"} & set(path.parts):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                values: list[ast.AST] = []
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                    values += [kw.value for kw in node.keywords if kw.arg == "code"]
                    if name == "_Failure" and len(node.args) > 1:
                        values.append(node.args[1])
                elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "default_code" for t in node.targets):
                    values.append(node.value)
                for value in values:
                    parts = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                    codes |= {p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)}
    return codes


def test_every_error_code_the_api_can_answer_is_documented_and_no_other():
    found = _codes_in_source()
    assert "insufficient_funds" in found and "upstream_timeout" in found  # the scan does see the API
    assert found == {error.code for error in API_ERRORS}


def test_every_documented_error_has_its_section_in_both_languages(client, demo_models):
    for lang in LANGUAGES:
        html = _get(client, "errors", lang)
        for error in API_ERRORS:
            assert f'<h3 id="{error.code}">' in html, (lang, error.code)
            assert f'href="#{error.code}"' in html, (lang, error.code)


def test_the_documented_sdk_exceptions_are_the_ones_the_openai_sdk_raises():
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    for error in API_ERRORS:
        for status, documented in zip(error.statuses, error.python, strict=True):
            response = httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
            raised = client._make_status_error("message", body=None, response=response)
            assert type(raised).__name__ == documented, (error.code, status)


def test_the_documented_error_types_are_the_apis():
    assert next(e for e in API_ERRORS if e.code == "insufficient_funds").types == ApiError(402, "", code="x").type
    assert next(e for e in API_ERRORS if e.code == "upstream_invalid_request").types == (
        "invalid_request_error, not_found_error"
    )


def _rejects(name: str, value) -> bool:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], name: value}
    try:
        parse_chat_request(json.dumps(body).encode())
    except ApiError as error:
        assert error.param == name
        return True
    return False


@pytest.mark.parametrize(("name", "bounds"), PARAM_RANGES.items())
def test_the_documented_parameter_ranges_are_the_validators(name, bounds):
    low, high = bounds
    step = 1 if name in ("n", "max_tokens", "max_completion_tokens") else 0.01
    assert not _rejects(name, low)
    assert not _rejects(name, high)
    assert _rejects(name, low - step)
    assert _rejects(name, high + step)


@pytest.mark.parametrize("lang_prefix", ["/docs/", "/docs/en/"])
def test_the_account_wide_cap_is_shown_only_when_set(db, client, settings, lang_prefix):
    settings.ACCOUNT_RPM = 0
    assert "777" not in client.get(f"{lang_prefix}rate-limits/").content.decode()
    settings.ACCOUNT_RPM = 777
    assert "777" in client.get(f"{lang_prefix}rate-limits/").content.decode()
