"""Twilio webhook signatures: one implementation for SMS and voice, in hub.web.twilio_signature."""

from __future__ import annotations

from hub.web.twilio_signature import SIGNATURE_HEADER, form_fields, public_url, signature_ok, signed_form

__all__ = ["SIGNATURE_HEADER", "form_fields", "public_url", "signature_ok", "signed_form"]
