"""The base of every form: Flask-WTF's, with WTForms' own messages translated from a
catalogue loaded once per language (Flask-WTF would read it from disk on every request)."""

from __future__ import annotations

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
