"""The base of every form: Flask-WTF's, with WTForms' own messages translated from a
catalogue loaded once per language (Flask-WTF would read it from disk on every request),
and the filter every code field shares."""

from __future__ import annotations

import unicodedata
from functools import cache

from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.i18n import get_translations


@cache
def _wtforms_translations(language: str):
    return get_translations([language])


class Form(FlaskForm):
    class Meta:
        def get_translations(self, form):
            return _wtforms_translations(str(get_locale()))


def code_digits(value: str | None) -> str | None:
    """A typed code without spaces, each Unicode decimal digit (fullwidth, Arabic-Indic, ...)
    as its ASCII digit: a phone's keyboard may type any of them, and all mean the code."""
    if not value:
        return value
    return "".join(str(unicodedata.decimal(ch, ch)) for ch in value if not ch.isspace())
