"""Every user-facing string is in every catalogue, translated, with its placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ["fi", "sv", "en"]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def catalog(language: str):
    with (ROOT / "translations" / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


def source_ids() -> set[str]:
    """What `make messages` extracts (babel.cfg), failing loudly on a template it cannot
    read instead of skipping it."""
    with (ROOT / "babel.cfg").open() as config:
        methods, options = parse_mapping_cfg(config)
    options = {pattern: {**opts, "silent": "false"} for pattern, opts in options.items()}
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), methods, options_map=options, keywords=KEYWORDS
    ):
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def test_texts_inside_cached_fragments_are_extracted():
    """The {% cache %} tag (Flask-Caching) must not hide a template's texts."""
    assert {"1. Controller", "Send me the code", "Your data"} <= source_ids()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_in_the_code_is_in_the_catalogue(language):
    """A new text without `make messages` and a translation fails here."""
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog(language) if m.id}
    missing = source_ids() - ids
    assert not missing, f"run `make messages` and translate: {sorted(missing)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_is_translated(language):
    """No empty and no fuzzy entries in any language."""
    untranslated = [
        m.id
        for m in catalog(language)
        if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))
    ]
    assert untranslated == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language):
    """%(code)s, %(link)s and friends survive translation."""
    for message in catalog(language):
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) <= set(PLACEHOLDER.findall(source)) | {
                "%(num)d"
            }, (source, string)
            assert set(PLACEHOLDER.findall(source)) - {"%(num)d"} <= set(
                PLACEHOLDER.findall(string)
            ), (source, string)
