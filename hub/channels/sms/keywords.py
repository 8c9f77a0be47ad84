"""Consent keywords: a whole SMS/WhatsApp message that opts out, opts back in or asks for help."""

from __future__ import annotations

import re
from enum import StrEnum


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


# Twilio's default keywords (it blocks the sender itself on these, so the hub must agree with it)
# plus Italian opt-out words. No Italian opt-in word: Twilio keeps blocking a number until it
# sends one of *its* opt-in words, so recording consent on "ISCRIVI" would promise sends that
# Twilio refuses with error 21610.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        Keyword.OPT_OUT,
    ),
    **dict.fromkeys(("BASTA", "CANCELLA", "DISISCRIVI"), Keyword.OPT_OUT),
    **dict.fromkeys(("START", "YES", "UNSTOP"), Keyword.OPT_IN),
    **dict.fromkeys(("HELP", "INFO", "AIUTO"), Keyword.HELP),
}

# Twilio Advanced Opt-Out sends the class of keyword it matched in the `OptOutType` form field.
_OPT_OUT_TYPES = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}

# Phones add trailing punctuation and emoji-free decorations such as "Stop!" or "stop."; we only
# forgive punctuation at the end, so "stop please" or "!stop" stay ordinary messages.
_TRAILING = re.compile(r"[\s.!?;:,¡¿]+$")


def normalise(body: str) -> str:
    """Upper-case the body with surrounding whitespace and trailing punctuation removed."""
    return _TRAILING.sub("", body.strip()).upper()


def classify(body: str, opt_out_type: str | None = None) -> Keyword | None:
    """Return the consent keyword a message is, honouring Twilio's OptOutType over the body."""
    if opt_out_type:
        by_twilio = _OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if by_twilio is not None:
            return by_twilio
    return KEYWORDS.get(normalise(body))
