"""Campaigns: a marketing SMS to everyone who has a purpose granted, written per language
by an admin, then sent by the campaign sender (``viihde.jobs.campaigns``).

The sender goes through the audience in subscriber id order, one message at a time. It
reads the campaign's status again before each message (a pause takes effect at once),
waits out quiet hours, keeps to CAMPAIGN_MESSAGES_PER_SECOND, and checks the person's
consent under a lock on their row at the moment their message goes out. The unique
(campaign, subscriber) row makes sure nobody gets a campaign twice, whatever twin
senders or retries do. A message whose sender died between logging it and handing it
over is handed over by a later turn, if the person's consent still stands.
"""

from viihde.register.campaigns.drafts import (
    LANGUAGES,
    Draft,
    audience_counts,
    create_draft,
    footer,
    preview,
    sample_link,
    sample_text,
    segment_price,
    test_send,
    update_draft,
)
from viihde.register.campaigns.figures import figures, figures_of
from viihde.register.campaigns.sending import (
    cancel,
    next_allowed,
    pause,
    pause_all_sending,
    resume,
    start,
)
from viihde.register.campaigns.state import (
    CANCELLED,
    DRAFT,
    FINISHED,
    PAUSED,
    SENDING,
    CampaignStateError,
    SenderUnavailable,
    audit_detail,
    get,
    sending_now,
)

__all__ = [
    "CANCELLED",
    "DRAFT",
    "FINISHED",
    "LANGUAGES",
    "PAUSED",
    "SENDING",
    "CampaignStateError",
    "Draft",
    "SenderUnavailable",
    "audience_counts",
    "audit_detail",
    "cancel",
    "create_draft",
    "figures",
    "figures_of",
    "footer",
    "get",
    "next_allowed",
    "pause",
    "pause_all_sending",
    "preview",
    "resume",
    "sample_link",
    "sample_text",
    "segment_price",
    "sending_now",
    "start",
    "test_send",
    "update_draft",
]
