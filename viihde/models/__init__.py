"""The register: tables, constraints and indexes, one module per entity group.

Only the mobile number is personal data. Consent is an append-only ledger
(``ConsentEvent``); a holding's current consent is stored beside it (``ConsentState``),
always equal to the ledger's fold. Every name
is re-exported here: ``from viihde.models import Subscriber``.
"""

from viihde.models.base import (
    ATTRIBUTION,
    PHONE,
    VERSION,
    AppendOnly,
    AppendOnlyError,
    OutsideLongText,
    OutsideText,
    UTCDateTime,
)
from viihde.models.campaigns import CAMPAIGN_STATUSES, Campaign, CampaignMessage
from viihde.models.codes import Verification, VerificationKind
from viihde.models.holdings import Holding
from viihde.models.retention import ErasureSource, Refusal, RegisterKey, SignupTotal, Tombstone
from viihde.models.sms_log import (
    BUDGETED_KINDS,
    CAMPAIGN_KINDS,
    SMS_FINAL_STATUSES,
    SMS_STATUSES,
    UNSENT,
    BudgetSpan,
    InboundMessage,
    SmsBudgetCount,
    SmsKind,
    SmsMessage,
    SmsStatusEvent,
)
from viihde.models.staff import ApiToken, AuditAction, AuditEntry, StaffMember
from viihde.models.subscribers import (
    EVIDENCE_FIELDS,
    TEXT_VERSION_FIELDS,
    ConsentActor,
    ConsentEvent,
    ConsentEvidence,
    ConsentSource,
    ConsentState,
    LawfulBasis,
    Subscriber,
    open_holding_of,
)

#: The tables whose rows name a person's number in clear (``phone_e164``): an erasure
#: deletes the person's rows of each, and a restore (``register.restore``) reads them all
#: to find a number by its tombstone. A table added with a number belongs here (a test
#: holds the list to the schema).
HOLDING_A_NUMBER = (Subscriber, Verification, SmsMessage, InboundMessage)

__all__ = [
    "ATTRIBUTION",
    "BUDGETED_KINDS",
    "CAMPAIGN_KINDS",
    "CAMPAIGN_STATUSES",
    "EVIDENCE_FIELDS",
    "HOLDING_A_NUMBER",
    "PHONE",
    "SMS_FINAL_STATUSES",
    "SMS_STATUSES",
    "TEXT_VERSION_FIELDS",
    "UNSENT",
    "VERSION",
    "ApiToken",
    "AppendOnly",
    "AppendOnlyError",
    "AuditAction",
    "AuditEntry",
    "BudgetSpan",
    "Campaign",
    "CampaignMessage",
    "ConsentActor",
    "ConsentEvent",
    "ConsentEvidence",
    "ConsentSource",
    "ConsentState",
    "ErasureSource",
    "Holding",
    "InboundMessage",
    "LawfulBasis",
    "OutsideLongText",
    "OutsideText",
    "Refusal",
    "RegisterKey",
    "SignupTotal",
    "SmsBudgetCount",
    "SmsKind",
    "SmsMessage",
    "SmsStatusEvent",
    "StaffMember",
    "Subscriber",
    "Tombstone",
    "UTCDateTime",
    "Verification",
    "VerificationKind",
    "open_holding_of",
]
