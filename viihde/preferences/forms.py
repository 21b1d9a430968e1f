"""The preference page's one form: unsubscribe or subscribe again."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SubmitField


class ChoiceForm(FlaskForm):
    """Two buttons; whichever was pressed says what the person wants."""

    unsubscribe = SubmitField(_l("Unsubscribe from all messages"))
    subscribe = SubmitField(_l("Subscribe again"))
