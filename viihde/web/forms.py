"""The base of every form: Flask-WTF's, with WTForms' own messages translated from a
catalogue loaded once per language (Flask-WTF would read it from disk on every request),
read from the posted form only, and the filter every code field shares."""

from __future__ import annotations

from functools import cache, cached_property

from flask import current_app, request
from flask_babel import get_locale
from flask_wtf import FlaskForm
from werkzeug.datastructures import CombinedMultiDict
from wtforms.i18n import get_translations

from viihde.phone import ascii_digits


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
            wrapped = super().wrap_formdata(form, formdata)
            # No form here takes a file: Flask-WTF would put a multipart body's file parts
            # among the fields, and a field posted as a file reached the filters and the
            # number's parser as a FileStorage (a 500). Only the posted fields count.
            return request.form if isinstance(wrapped, CombinedMultiDict) else wrapped


#: In ``app.extensions``: True when the app's hook checks the CSRF token of every unsafe
#: request before its view (``viihde.register_extensions``; the default).
CSRF_CHECKED_BEFORE_VIEWS = "viihde.csrf_checked_before_views"


class PostedForm(Form):
    """A form whose token the app's hook checked before the view: it makes and checks none
    of its own (a tenth of an unsubscribe's CPU, and of a code's, issue 18). A page that
    shows it puts the request's token in itself (``csrf_token()`` in the template, made
    only when the page is shown). If a setting turned the hook off
    (``WTF_CSRF_CHECK_DEFAULT=False``: Flask-WTF's "views check for themselves"), it
    checks as every other form does."""

    class Meta:
        @cached_property
        def csrf(self) -> bool:
            config = current_app.config
            checked = current_app.extensions.get(CSRF_CHECKED_BEFORE_VIEWS, False) and (
                "POST" in config.get("WTF_CSRF_METHODS", ("POST",))  # the hook checks POSTs
            )
            return not checked and config.get("WTF_CSRF_ENABLED", True)


def code_digits(value: str | None) -> str | None:
    """A typed code without spaces, each Unicode decimal digit (fullwidth, Arabic-Indic, ...)
    as its ASCII digit: a phone's keyboard may type any of them, and all mean the code."""
    if not value:
        return value
    return ascii_digits("".join(ch for ch in value if not ch.isspace()))
