"""Sign-up forms: the number with consent, the code, and resending it."""

from __future__ import annotations

from functools import cache

from flask import current_app
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, StringField
from wtforms.validators import DataRequired, InputRequired, Regexp, ValidationError

from viihde.phone import PhoneError
from viihde.register.notices import SIGNUP_TEXT
from viihde.web.forms import Form, PostedForm, code_digits
from viihde.web.messages import PHONE_REFUSALS
from viihde.web.request import typed_number

#: Ad click ids we keep with the consent, by query parameter.
CLICK_ID_PARAMETERS = ("gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid")
ATTRIBUTION_LENGTH = 100
#: The ad click id's column ("gclid:" and the id the address carried).
CLICK_ID_LENGTH = 255


def clean_attribution(value: str | None, length: int = ATTRIBUTION_LENGTH) -> str | None:
    """Keep printable characters of a campaign value, cut to the column size."""
    if not value:
        return None
    printable = "".join(ch for ch in value if ch.isprintable()).strip()
    return printable[:length] or None


def clean_click_id(value: str | None) -> str | None:
    """The ad click id as the landing page put it in its form ("gclid:…"), cleaned as the
    address's values are: printable characters only (no control or direction characters
    to reach the receipt, the card or an export), cut to its column."""
    return clean_attribution(value, CLICK_ID_LENGTH)


def attribution_from(args) -> dict[str, str | None]:
    """utm_source, utm_medium, utm_campaign and the first ad click id in a landing URL."""
    if not args:  # most visits: nine look-ups that would each miss
        return dict.fromkeys(("utm_source", "utm_medium", "utm_campaign", "click_id"))
    data = {
        key: clean_attribution(args.get(key))
        for key in ("utm_source", "utm_medium", "utm_campaign")
    }
    data["click_id"] = next(
        (
            f"{name}:{value}"
            for name in CLICK_ID_PARAMETERS
            if (value := clean_attribution(args.get(name)))  # one of control characters: none
        ),
        None,
    )
    return data


class SignupForm(Form):
    """The landing page: a mobile number and an unticked consent box.

    No CSRF token, so that the landing page needs no session and is the same bytes for
    everyone (``signup/shared.py``): its POST is checked by Fetch Metadata and Origin
    instead (``viihde.web.security.same_origin_only``)."""

    class Meta:
        csrf = False

    phone = StringField(
        _l("Mobile number"),
        validators=[InputRequired(message=_l("Type your mobile number."))],
        render_kw={"type": "tel", "autocomplete": "tel", "inputmode": "tel", "maxlength": 32},
    )
    consent = BooleanField(
        SIGNUP_TEXT,
        validators=[
            DataRequired(
                message=_l("Tick the box to give your consent, or we cannot send you messages.")
            )
        ],
    )
    utm_source = HiddenField(filters=[clean_attribution])
    utm_medium = HiddenField(filters=[clean_attribution])
    utm_campaign = HiddenField(filters=[clean_attribution])
    click_id = HiddenField(filters=[clean_click_id])

    phone_e164: str | None = None

    def validate_phone(self, field) -> None:
        """Parse the number as typed; each refusal gets its own message."""
        try:
            self.phone_e164 = typed_number(field.data)  # parsed once, with the limits'
        except PhoneError as error:
            raise ValidationError(PHONE_REFUSALS[error.reason]) from None


class CodeForm(PostedForm):
    """The one-time code from the SMS: ``CODE_DIGITS`` digits."""

    code = StringField(
        _l("Code"),
        filters=[code_digits],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            # Any script's digits and spaces: the server reads them all (``code_digits``).
            "pattern": r"[\p{Nd}\s]*",
        },
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        digits = current_app.config["CODE_DIGITS"]
        self.code.validators = _code_validators(digits)
        self.code.flags.required = True
        # One more for a space: people copy the code as it reads, "123 456".
        self.code.render_kw = {**self.code.render_kw, "maxlength": digits + 1}


@cache
def _code_validators(digits: int) -> list:
    """The code field's validators for ``digits`` digits, made once: their messages are
    translated when a page shows one, in its language."""
    return [
        InputRequired(message=_l("Type the %(num)d-digit code from the text message.", num=digits)),
        Regexp(rf"^[0-9]{{{digits}}}$", message=_l("The code is %(num)d digits.", num=digits)),
    ]


class ResendForm(PostedForm):
    """Ask for a new code (the request's token only)."""
