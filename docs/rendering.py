"""Page sources → Markdown (Django template) → HTML, and the code examples found in the Markdown.

An executable example is a fenced block tagged `bash`, `python` or `javascript`. The HTML comment
right above it (`<!-- example: … -->`) tells the test suite how to run and check it; readers never
see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import markdown
from django.template import Context, Template
from markdown.extensions.toc import slugify_unicode

from .pages import Page

EXAMPLE_LANGUAGES = ("bash", "python", "javascript")
_FENCE = re.compile(
    r"^(?:<!-- example:(?P<directive>[^\n]*?)-->\n)?```(?P<language>[\w-]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_DIRECTIVE = re.compile(r"^<!-- example:[^\n]*?-->\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A fenced block of a rendered page; `directive` is its `<!-- example: … -->` text, if any."""

    language: str
    code: str
    directive: str

    @property
    def executable(self) -> bool:
        return self.language in EXAMPLE_LANGUAGES


@dataclass(frozen=True, slots=True)
class RenderedPage:
    html: str
    toc: list[dict]


@lru_cache(maxsize=64)
def _template(path: str, mtime_ns: int) -> Template:
    with open(path, encoding="utf-8") as source:
        return Template(source.read())


def page_markdown(page: Page, lang: str, context: dict) -> str:
    """The page's Markdown: its source rendered as a Django template (no HTML escaping: this is not HTML yet)."""
    path = page.source_path(lang)
    return _template(str(path), path.stat().st_mtime_ns).render(Context(context, autoescape=False))


def code_blocks(markdown_text: str) -> list[CodeBlock]:
    """Every fenced block, in page order."""
    return [CodeBlock(m["language"], m["code"], (m["directive"] or "").strip()) for m in _FENCE.finditer(markdown_text)]


def markdown_html(markdown_text: str) -> RenderedPage:
    """HTML of a page's Markdown, and its table of contents."""
    converter = markdown.Markdown(
        extensions=["fenced_code", "tables", "toc", "attr_list"],
        extension_configs={"toc": {"slugify": slugify_unicode, "toc_depth": "2-3"}},
        output_format="html",
    )
    html = converter.convert(_DIRECTIVE.sub("", markdown_text))
    return RenderedPage(html=html, toc=converter.toc_tokens)
