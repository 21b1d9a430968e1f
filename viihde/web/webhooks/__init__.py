"""Webhooks Twilio calls: delivery status and inbound replies."""
