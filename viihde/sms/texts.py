"""The SMS texts, each one GSM-7 segment in every language.

``tests/test_sms.py`` renders each in fi, sv and en with the longest
realistic values and fails if any needs a second segment or UCS-2.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_babel import force_locale, gettext, ngettext


def sender_accepts_replies(sender: str | None) -> bool:
    """A number (E.164 or a short code) can take replies; an alphanumeric ID cannot."""
    digits = (sender or "").removeprefix("+")
    return digits.isdigit()


def webotp_host(public_base_url: str) -> str:
    """The host named in the WebOTP line: the origin people see in their browser."""
    return urlsplit(public_base_url).hostname or "localhost"


def code_message(code: str, ttl_seconds: int, public_base_url: str, language: str) -> str:
    """The one-time code SMS, with how long it is valid (``CODE_TTL_SECONDS``), ending with
    the WebOTP line ``@host #code``."""
    with force_locale(language):
        text = ngettext(
            "Your Viihdepaketti.fi code is %(code)s. It is valid for %(num)d minute.",
            "Your Viihdepaketti.fi code is %(code)s. It is valid for %(num)d minutes.",
            ttl_seconds // 60,
            code=code,
        )
    return f"{text}\n\n@{webotp_host(public_base_url)} #{code}"


def welcome_message(link: str, language: str, replies_reach_us: bool) -> str:
    """The welcome SMS with the preference link; "reply STOP" only when replies can arrive."""
    with force_locale(language):
        if replies_reach_us:
            return gettext(
                "Welcome to Viihdepaketti.fi! Change or stop your messages for free: "
                "%(link)s or reply STOP",
                link=link,
            )
        return gettext(
            "Welcome to Viihdepaketti.fi! Change or stop your messages for free: %(link)s",
            link=link,
        )


def new_link_message(link: str, language: str) -> str:
    """The fresh preference link sent after "sign out my links"."""
    with force_locale(language):
        return gettext(
            "Your new Viihdepaketti.fi link for changing or stopping your messages: %(link)s "
            "Earlier links no longer work.",
            link=link,
        )


def link_message(link: str, language: str) -> str:
    """The preference link, sent again on request."""
    with force_locale(language):
        return gettext(
            "Your Viihdepaketti.fi link for changing or stopping your messages: %(link)s",
            link=link,
        )


def stop_reply(language: str) -> str:
    """The answer to STOP: marketing has stopped, and how to undo it."""
    with force_locale(language):
        return gettext(
            "You will get no more marketing messages from Viihdepaketti.fi. "
            "To get them again, reply START."
        )


def help_reply(link: str, language: str) -> str:
    """The answer to HELP: who we are, the settings link and the STOP instruction."""
    with force_locale(language):
        return gettext(
            "Viihdepaketti.fi messages. Change or stop them for free: %(link)s or reply STOP",
            link=link,
        )


def test_message(language: str) -> str:
    """The set-up check sent by `flask sms send-test`."""
    with force_locale(language):
        return gettext("Viihdepaketti.fi test message: SMS sending works. No need to reply.")


def campaign_footer(link: str, language: str, replies_reach_us: bool, customer: bool) -> str:
    """The end of every campaign message: how to stop, with the person's own link. A
    customer's first message (no consent asked) says instead how to refuse."""
    with force_locale(language):
        if customer and replies_reach_us:
            return gettext(
                "You get this as our customer. Refuse for free: %(link)s or reply STOP", link=link
            )
        if customer:
            return gettext("You get this as our customer. Refuse for free: %(link)s", link=link)
        if replies_reach_us:
            return gettext("Stop for free: %(link)s or reply STOP", link=link)
        return gettext("Stop for free: %(link)s", link=link)
