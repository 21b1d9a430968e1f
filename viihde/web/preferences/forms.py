"""Preference forms: the switches, stop-all, the rights' buttons and the step-up code."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SubmitField
from wtforms.validators import DataRequired

from viihde.register import purposes
from viihde.web.forms import Form, PostedForm


class ChoicesForm(PostedForm):
    """A switch per purpose, saved together; or one tap to stop everything (the page is
    plain HTML: the form only reads the POST)."""

    save = SubmitField(_l("Save my choices"))
    stop_all = SubmitField(_l("Stop all marketing"))

    def choices(self, formdata) -> dict[str, bool]:
        """What the person switched on and off, per configured purpose."""
        return {key: formdata.get(f"purpose-{key}") == "on" for key in purposes.configured_keys()}


class ButtonForm(Form):
    """A single button (sign out my links, send a code): CSRF only."""


class EraseForm(Form):
    """Erasure needs a deliberate tick as well as the button."""

    understood = BooleanField(
        _l("I understand that my data is erased for good and that I will get no more messages."),
        validators=[DataRequired(message=_l("Tick the box to confirm the erasure."))],
    )
