"""RFC 3834 auto-reply and bulk detection, and the loop guard."""

from __future__ import annotations

import pytest

from hub.channels.email.autoreply import detect, should_auto_reply
from hub.core.envelopes import Flag


@pytest.mark.parametrize(
    "headers",
    [
        [("Auto-Submitted", "auto-replied")],
        [("Auto-Submitted", "auto-generated; type=vacation")],
        [("X-Autoreply", "yes")],
        [("X-Autorespond", "Out of office")],
        [("Precedence", "auto_reply")],
    ],
)
def test_autoreply_headers_flag_autoreply(headers: list[tuple[str, str]]) -> None:
    assert Flag.AUTOREPLY in detect(headers, "Hello")


def test_auto_submitted_no_is_a_person() -> None:
    assert detect([("Auto-Submitted", "no")], "Hello") == frozenset()


@pytest.mark.parametrize(
    "headers",
    [
        [("Precedence", "bulk")],
        [("Precedence", "junk")],
        [("Precedence", "list")],
        [("List-Id", "<news.example.com>")],
        [("List-Unsubscribe", "<mailto:u@x>")],
    ],
)
def test_list_and_bulk_headers_flag_bulk(headers: list[tuple[str, str]]) -> None:
    assert detect(headers, "News") == frozenset({Flag.BULK})


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Booking",
        "Automatic reply: Booking",
        "Risposta automatica: Prenotazione",
        "Fuori sede fino al 10",
        "Abwesenheitsnotiz: Buchung",
        "Réponse automatique : Réservation",
        "Respuesta automática: Reserva",
        "[Ticket 4] Out of office",
    ],
)
def test_out_of_office_subjects_flag_autoreply(subject: str) -> None:
    assert Flag.AUTOREPLY in detect([], subject)


def test_a_question_about_an_absence_is_not_an_autoreply() -> None:
    assert detect([], "Re: sarete fuori sede ad agosto?") == frozenset()


def test_loop_guard_answers_people_under_the_cap_only() -> None:
    assert should_auto_reply(frozenset(), 0, 3)
    assert not should_auto_reply(frozenset(), 3, 3)
    assert not should_auto_reply(frozenset({Flag.AUTOREPLY}), 0, 3)
    assert not should_auto_reply(frozenset({Flag.BULK}), 0, 3)
    assert not should_auto_reply(frozenset({Flag.BOUNCE}), 0, 3)
    assert not should_auto_reply(frozenset(), 0, 0)
