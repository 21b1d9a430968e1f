"""Twilio: sending through the official SDK, and what its error codes mean.

The sending side of Twilio (its webhooks are ``viihde/web/webhooks/twilio.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from requests import RequestException
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from viihde.sms.backends import Outgoing, SendFailed

#: Where Twilio reports delivery status (appended to PUBLIC_BASE_URL).
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"


class _RedirectedHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to ``base_url`` instead of twilio.com (a local stand-in)."""

    def __init__(self, base_url: str, **options) -> None:
        super().__init__(**options)
        self.base = urlsplit(base_url.rstrip("/"))

    def request(self, method: str, url: str, **options):
        path, query = urlsplit(url)[2:4]
        url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path + path, query, ""))
        return super().request(method, url, **options)


#: Twilio's error codes that mean the number itself will never get our texts, however
#: often we try: its problem, not an outage (https://www.twilio.com/docs/api/errors).
#: Not here: 21408 and 21608 (our account's permissions), 21612 (no route between our
#: sender and that network), 30003 (a phone off or out of reach, for now).
#: The recipient replied STOP to our sender at Twilio: Twilio refuses to text them.
OPTED_OUT = "21610"
NUMBER_REFUSALS = frozenset(
    {
        "21211",  # invalid 'To' phone number
        "21265",  # 'To' is a short code
        "21266",  # 'To' is our own sender
        "21610",  # the recipient has opted out of our sender (replied STOP to it)
        "21614",  # 'To' is not a valid mobile number
        "21635",  # 'To' is a landline
        "30005",  # delivery: unknown destination handset (the number does not exist)
        "30006",  # delivery: landline or unreachable carrier
    }
)


def refuses_the_number(error_code: str | None) -> bool:
    """Does this Twilio error code (from the API or a status callback) say the number
    cannot receive our text messages at all, rather than not just now?"""
    return error_code in NUMBER_REFUSALS


def _is_transient(error: TwilioRestException) -> bool:
    # Twilio error 20429: "never processed and is always safe to retry"; a 5xx may be retried.
    return error.status == 429 or error.status >= 500


class TwilioBackend:
    """Sends through Twilio's REST API (Messages resource) with the official SDK."""

    name = "twilio"

    def __init__(self, config: Mapping) -> None:
        options = {"timeout": config["TWILIO_TIMEOUT_SECONDS"]}
        if config.get("TWILIO_API_BASE_URL"):
            http_client = _RedirectedHttpClient(config["TWILIO_API_BASE_URL"], **options)
        else:
            http_client = TwilioHttpClient(**options)
        self.client = Client(
            config["TWILIO_ACCOUNT_SID"],
            config["TWILIO_AUTH_TOKEN"],
            region=config.get("TWILIO_REGION"),
            edge=config.get("TWILIO_EDGE"),
            http_client=http_client,
        )
        self.messaging_service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID")
        self.status_callback = config["PUBLIC_BASE_URL"] + STATUS_CALLBACK_PATH

    def send(self, message: Outgoing) -> str | None:
        options = {"to": message.to, "body": message.body, "status_callback": self.status_callback}
        if self.messaging_service_sid:
            options["messaging_service_sid"] = self.messaging_service_sid
        else:
            options["from_"] = message.sender
        try:
            return self.client.messages.create(**options).sid
        except TwilioRestException as error:
            code = str(error.code) if error.code else f"http_{error.status}"
            raise SendFailed(
                str(error.msg),
                code,
                transient=_is_transient(error),
                opted_out=code == OPTED_OUT,
            ) from None
        except RequestException as error:  # no answer: a timeout or a broken connection
            raise SendFailed(type(error).__name__, "network", transient=True) from None
        except TwilioException as error:
            raise SendFailed(type(error).__name__, "twilio", transient=False) from None
