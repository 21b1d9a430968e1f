"""The base of every form: Flask-WTF's, with WTForms' own messages translated from a
catalogue loaded once per language (Flask-WTF would read it from disk on every request),
read from the posted form only, and the filter every code field shares."""

from __future__ import annotations

import unicodedata
from functools import cache

from flask import request
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

        def wrap_formdata(self, form, formdata):
            # Every form here is an HTML form. Flask-WTF would read a JSON body as one, and a
            # body that is not a JSON object (`0`, `[]`) or holds numbers would fail inside
            # WTForms with a 500; a JSON body is read as an empty form (a 400 that says so).
            if request.is_json:
                return None
            return super().wrap_formdata(form, formdata)


def code_digits(value: str | None) -> str | None:
    """A typed code without spaces, each Unicode decimal digit (fullwidth, Arabic-Indic, ...)
    as its ASCII digit: a phone's keyboard may type any of them, and all mean the code."""
    if not value:
        return value
    return "".join(str(unicodedata.decimal(ch, ch)) for ch in value if not ch.isspace())
