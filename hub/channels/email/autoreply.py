"""Automatic and bulk mail (RFC 3834), and the guard that stops auto-reply loops."""

from __future__ import annotations

import re
from collections.abc import Iterable

from hub.core.envelopes import Flag

# Out-of-office subjects, at the start of the subject (after a `[tag]` or two) so that a
# customer's "Re: fuori sede?" question in the middle of a thread is not taken for one.
_OUT_OF_OFFICE = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)*(?:"
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?reply|autoresponse|auto response"
    r"|vacation (?:reply|response)|away from (?:the )?office"
    r"|risposta automatica|fuori sede|fuori ufficio|assenza dall'ufficio|risposta di assenza"
    r"|abwesenheitsnotiz|automatische antwort|nicht im büro"
    r"|réponse automatique|absent du bureau|absence du bureau|message d'absence"
    r"|respuesta automática|respuesta automatica|fuera de la oficina"
    r"|automatisch antwoord|resposta automática|ausência temporária"
    r")",
    re.IGNORECASE,
)
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_LIST_HEADERS = ("list-id", "list-unsubscribe")
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond")


def _autoreply_header(name: str, value: str) -> bool:
    """Headers a responder sets on what it sends (RFC 3834 and the common X- variants)."""
    if name == "auto-submitted":
        # RFC 3834 section 5: any value but "no" means the message was generated automatically.
        return value.split(";", 1)[0].strip().lower() not in ("", "no")
    if name in _AUTOREPLY_HEADERS:
        return value.strip().lower() != "no"
    return name == "precedence" and value.strip().lower() == "auto_reply"


def _bulk_header(name: str, value: str) -> bool:
    """Mailing lists and newsletters: a reply would go to a list or nobody."""
    if name == "precedence":
        return value.strip().lower() in _BULK_PRECEDENCE
    return name in _LIST_HEADERS and bool(value.strip())


def detect(headers: Iterable[tuple[str, str]], subject: str | None) -> frozenset[Flag]:
    """AUTOREPLY and BULK flags from the headers (name, value) and the subject."""
    flags: set[Flag] = set()
    for name, value in headers:
        key = name.strip().lower()
        if _autoreply_header(key, value):
            flags.add(Flag.AUTOREPLY)
        if _bulk_header(key, value):
            flags.add(Flag.BULK)
    if subject and _OUT_OF_OFFICE.match(subject):
        flags.add(Flag.AUTOREPLY)
    return frozenset(flags)


_NEVER_ANSWER = frozenset({Flag.AUTOREPLY, Flag.BULK, Flag.BOUNCE, Flag.OWN_MAIL})


def should_auto_reply(flags: frozenset[Flag], recent_auto_replies_to_address: int, cap_per_hour: int) -> bool:
    """Answer automatically only a person (RFC 3834 section 2) and at most `cap_per_hour` times."""
    if flags & _NEVER_ANSWER:
        return False
    return recent_auto_replies_to_address < cap_per_hour
