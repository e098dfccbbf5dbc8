from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext

import bot

PO = Path(bot.__file__).parent / "locale" / "ru" / "LC_MESSAGES" / "django.po"


def _po_entries() -> list[tuple[str, str]]:
    """Return the (msgid, msgstr) pairs of the bot's .po file, header left out."""
    entries: list[tuple[str, str]] = []
    field, values = "", {"msgid": "", "msgstr": ""}
    for line in [*PO.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith(("msgid ", "msgstr ")):
            field, _, literal = line.partition(" ")
            values[field] = ast.literal_eval(literal)
        elif line.startswith('"'):
            values[field] += ast.literal_eval(line)
        elif not line.strip() and field:
            if values["msgid"]:
                entries.append((values["msgid"], values["msgstr"]))
            field, values = "", {"msgid": "", "msgstr": ""}
    return entries


ENTRIES = _po_entries()


def _source_texts() -> set[str]:
    """Return every string the bot's code passes to `_` (gettext)."""
    texts = set()
    for path in Path(bot.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_" and node.args:
                if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    texts.add(node.args[0].value)
    return texts


def test_the_catalog_holds_exactly_the_texts_of_the_code():
    assert _source_texts() == {msgid for msgid, _ in ENTRIES}


@pytest.mark.parametrize(("msgid", "msgstr"), ENTRIES, ids=[m[:40] for m, _ in ENTRIES])
def test_every_text_is_translated_and_compiled(msgid, msgstr):
    assert msgstr and msgstr != msgid
    with translation.override("ru"):
        assert gettext(msgid) == msgstr
    with translation.override("en"):
        assert gettext(msgid) == msgid
