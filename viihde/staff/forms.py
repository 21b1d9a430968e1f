"""Support console forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp

from ..forms import Form

REASON = [
    InputRequired(message=_l("Write the reason, for example 'phoned on 25.11.'.")),
    Length(min=3, max=300, message=_l("Write the reason in 3 to 300 characters.")),
]


class LoginForm(Form):
    email = EmailField(
        _l("Email"),
        validators=[InputRequired(message=_l("Type your email.")), Length(max=254)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[InputRequired(message=_l("Type your password.")), Length(max=128)],
        render_kw={"autocomplete": "current-password"},
    )


class TotpForm(Form):
    code = StringField(
        _l("Code from your authenticator app"),
        filters=[lambda v: "".join(v.split()) if v else v],
        validators=[
            InputRequired(message=_l("Type the 6-digit code.")),
            Regexp(r"^\d{6}$", message=_l("The code is 6 digits.")),
        ],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 7},
    )


class SearchForm(Form):
    query = StringField(
        _l("Number, or at least its last 6 digits"),
        validators=[InputRequired(message=_l("Type a number.")), Length(max=32)],
        render_kw={"inputmode": "tel", "autocomplete": "off"},
    )


class WithdrawForm(Form):
    reason = StringField(_l("Reason"), validators=REASON)


class EraseForm(Form):
    reason = StringField(_l("Reason"), validators=REASON)
    confirm = BooleanField(
        _l("I have checked the number: erase everything stored about it."),
        validators=[DataRequired(message=_l("Tick the box to confirm the erasure."))],
    )


class ButtonForm(Form):
    """A single action button: CSRF only."""


class AuditFilterForm(Form):
    class Meta:
        csrf = False  # a GET filter that changes nothing

    actor = StringField(_l("Who"), validators=[Optional(), Length(max=254)])
    action = SelectField(_l("Action"), choices=[], validate_choice=False)
    number = StringField(_l("Number"), validators=[Optional(), Length(max=32)])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])


class DashboardForm(Form):
    class Meta:
        csrf = False

    campaign = SelectField(_l("Campaign"), choices=[], validate_choice=False)


class ApiTokenForm(Form):
    """A new token for the audience API: a name that says who uses it."""

    name = StringField(
        _l("Name"),
        validators=[
            InputRequired(message=_l("Name the token after the tool that uses it.")),
            Length(max=64, message=_l("At most 64 characters.")),
        ],
    )
