"""Support console forms."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from viihde.register.purposes import configured
from viihde.web.forms import Form, PostedForm, code_digits

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


def _totp_field(label):
    return StringField(
        label,
        filters=[code_digits],
        validators=[
            InputRequired(message=_l("Type the 6-digit code.")),
            Regexp(r"^[0-9]{6}$", message=_l("The code is 6 digits.")),
        ],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 7},
    )


class TotpForm(Form):
    code = _totp_field(_l("Code from your authenticator app"))


class ReplaceTotpForm(Form):
    """A new authenticator app replaces the old one only with a code from the old one."""

    current_code = _totp_field(_l("Code from the app you use now"))
    code = _totp_field(_l("Code from the new app"))


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


#: The days a date filter may name: every entry's, and none whose start (in Helsinki, then
#: in UTC) or next day is past what a datetime holds, as 0001-01-01 and 9999-12-31 are.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def within_filter_range(form, field) -> None:
    """A day from FIRST_DAY to LAST_DAY."""
    if field.data is not None and not FIRST_DAY <= field.data <= LAST_DAY:
        raise ValidationError(
            _l(
                "Choose a day between the years %(first)d and %(last)d.",
                first=FIRST_DAY.year,
                last=LAST_DAY.year,
            )
        )


class AuditFilterForm(PostedForm):
    """The audit log's filters: posted with the form's token (a number in them), or read
    from a GET's query without a number."""

    actor = StringField(_l("Who"), validators=[Optional(), Length(max=254)])
    action = SelectField(_l("Action"), choices=[], validate_choice=False)
    number = StringField(_l("Number"), validators=[Optional(), Length(max=32)])
    since = DateField(_l("From"), validators=[Optional(), within_filter_range])
    until = DateField(_l("To"), validators=[Optional(), within_filter_range])

    def filter_value(self, name: str):
        """What a filter asks for, or None when it has an error (then it filters nothing)."""
        field = self[name]
        return None if field.errors else field.data


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


#: Longer than this, a campaign text would take more segments than anyone means to pay for.
CAMPAIGN_BODY_MAX = 800


def _campaign_body(label):
    return TextAreaField(
        label,
        validators=[
            DataRequired(message=_l("Write the text in every language.")),
            Length(max=CAMPAIGN_BODY_MAX, message=_l("At most 800 characters.")),
        ],
        render_kw={"rows": 5},
    )


class CampaignForm(Form):
    """A campaign: its name, the purpose it markets, and the text in each language."""

    name = StringField(
        _l("Name"),
        validators=[
            InputRequired(message=_l("Name the campaign.")),
            Length(max=100, message=_l("At most 100 characters.")),
        ],
    )
    purpose = SelectField(_l("Topic (who gets it: everyone who has it on)"), choices=[])
    body_fi = _campaign_body(_l("Text in Finnish"))
    body_sv = _campaign_body(_l("Text in Swedish"))
    body_en = _campaign_body(_l("Text in English"))
    save = SubmitField(_l("Save"))
    #: Shows the segments and the cost of the texts as typed, without saving them.
    preview = SubmitField(_l("Preview"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.purpose.choices = [(purpose.key, purpose.name) for purpose in configured()]


class CampaignTestForm(Form):
    """A test message to the admin's own phone."""

    number = StringField(
        _l("Your mobile number"),
        validators=[InputRequired(message=_l("Type your number.")), Length(max=32)],
        render_kw={"inputmode": "tel", "autocomplete": "tel"},
    )
    language = SelectField(
        _l("Language"),
        choices=[
            SelectChoice("fi", _l("Finnish")),
            SelectChoice("sv", _l("Swedish")),
            SelectChoice("en", _l("English")),
        ],
    )


class CampaignStartForm(Form):
    """Sending starts only when the admin confirms they have checked it."""

    confirm = BooleanField(
        _l("I have checked the texts and the test message: send the campaign."),
        validators=[DataRequired(message=_l("Tick the box to start sending."))],
    )
