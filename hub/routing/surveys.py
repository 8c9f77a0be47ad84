"""Departure surveys: sent by SMS or email from a template, answered by SMS digits or a signed form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.events import Event, EventHandler, publish
from hub.routing import events, outbound
from hub.routing.complaints import open_case_of
from hub.routing.workflows import workflow_of
from hub.settings import Settings
from hub.store.models import AuditEvent, Case, Customer, Identity, Message, Survey
from hub.store.types import utcnow

TEMPLATE = "departure_survey"
_DIGIT = re.compile(r"(?<!\d)[1-5](?!\d)")
_OTHER_DIGITS = re.compile(r"\d")

DEFAULT_SMS = ("Thank you for staying with us! Please reply with {{ count }} digits from 1 (poor) to 5 "
               "(excellent): {% for q in questions %}{{ loop.index }}) {{ q }} {% endfor %}")
DEFAULT_EMAIL = ("Thank you for staying with us!\n\nPlease tell us how it went ({{ count }} short "
                 "questions): {{ link }}\n")


def sign(survey_id: int, secret: str) -> str:
    """A URL-safe token naming the survey, unforgeable without the secret key."""
    mac = hmac.new(secret.encode(), f"survey:{survey_id}".encode(), hashlib.sha256).digest()[:18]
    return f"{survey_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def verify(token: str, secret: str) -> int | None:
    """The survey id in a token, or None when the token was not made with this secret."""
    head, _, _ = token.partition(".")
    if not head.isdigit() or len(head) > 18:
        return None
    return int(head) if hmac.compare_digest(sign(int(head), secret), token) else None


def parse_sms_answers(text: str, count: int) -> list[int] | None:
    """Digits 1-5, one per question ("4 5 3", "453" for one each); None when it is not an answer."""
    compact = text.strip()
    if compact.isdigit() and len(compact) == count and all(c in "12345" for c in compact):
        return [int(c) for c in compact]
    digits = [int(d) for d in _DIGIT.findall(text)]
    if len(digits) != count or len(_OTHER_DIGITS.findall(text)) != count:
        return None
    return digits


def score_of(answers: list[int]) -> float:
    return round(sum(answers) / len(answers), 2)


async def _channel(session: AsyncSession, customer_id: int, wanted: str) -> str:
    if wanted != "auto":
        return wanted
    kinds = set((await session.execute(
        select(col(Identity.kind)).where(col(Identity.customer_id) == customer_id))).scalars())
    return "email" if "email" in kinds else "sms"


async def send_survey(
    session: AsyncSession, case: Case, *, settings: Settings, channel: str = "auto", actor: str,
    handlers: tuple[EventHandler, ...] = (),
) -> Survey:
    """Write the survey and its outbound message (email carries the form link, SMS asks for digits)."""
    scoring = workflow_of(case).scoring
    questions = list(scoring.questions) if scoring else ["How was your stay?"]
    customer = await session.get(Customer, case.customer_id)
    assert customer is not None and case.id is not None
    chosen = await _channel(session, case.customer_id, channel)
    survey = Survey(case_id=case.id, customer_id=case.customer_id, channel=chosen, questions=questions)
    session.add(survey)
    await session.flush()
    assert survey.id is not None
    link = f"{settings.public_url.rstrip('/')}/s/{sign(survey.id, settings.secret_key)}"
    template = await outbound.find_template(session, TEMPLATE, chosen, customer.language)
    text = template.body_text if template else (DEFAULT_EMAIL if chosen == "email" else DEFAULT_SMS)
    body = outbound.render(text, {"questions": questions, "count": len(questions), "link": link,
                                  "name": customer.display_name})
    subject = outbound.render(template.subject, {"name": customer.display_name}) if template and \
        template.subject else "How was your stay?"
    conversation = await outbound.conversation_for(session, customer, chosen)
    message = await outbound.send(session, conversation, body, settings=settings, subject=subject,
                                  flags=("survey",), handlers=handlers)
    survey.message_id = message.id
    session.add(AuditEvent(actor=actor, action="survey.sent", entity="survey", entity_id=survey.id,
                           data={"case_id": case.id, "channel": chosen}))
    await publish(session, Event(events.SURVEY_SENT, case.customer_id, conversation.id, message.id,
                                 data={"survey_id": survey.id, "case_id": case.id}), handlers)
    return survey


async def record_answers(
    session: AsyncSession, survey: Survey, answers: list[int], *, via: str, handlers: tuple[EventHandler, ...] = ()
) -> None:
    """Store the answers and raise `survey.answered` (the workflow closes the case on it)."""
    if survey.status != "sent":
        raise ValueError("this survey was answered already")
    if len(answers) != len(survey.questions) or not all(1 <= a <= 5 for a in answers):
        raise ValueError(f"expected {len(survey.questions)} answers from 1 to 5")
    survey.answers, survey.score = list(answers), score_of(answers)
    survey.status, survey.answered_at = "answered", utcnow()
    data = {"survey_id": survey.id, "case_id": survey.case_id, "score": survey.score, "answers": answers,
            "via": via}
    session.add(AuditEvent(actor=f"customer:{survey.customer_id}", action="survey.answered", entity="survey",
                           entity_id=survey.id, data=data))
    await publish(session, Event(events.SURVEY_ANSWERED, survey.customer_id, data=data), handlers)


async def pending_survey(session: AsyncSession, case_id: int) -> Survey | None:
    found = await session.execute(
        select(Survey).where(col(Survey.case_id) == case_id, col(Survey.status) == "sent")
        .order_by(col(Survey.id).desc()).limit(1)
    )
    return found.scalar_one_or_none()


async def answer_by_sms(session: AsyncSession, event: Event, handlers: tuple[EventHandler, ...]) -> bool:
    """Take an inbound SMS as the answer when the customer's case waits for its survey."""
    if event.customer_id is None or event.message_id is None or event.data.get("channel") != "sms":
        return False
    case = await open_case_of(session, event.customer_id)
    if case is None or case.state != "departure_survey" or case.id is None:
        return False
    survey = await pending_survey(session, case.id)
    message = await session.get(Message, event.message_id)
    if survey is None or message is None:
        return False
    answers = parse_sms_answers(message.visible_text or message.body_text, len(survey.questions))
    if answers is None:
        return False
    await record_answers(session, survey, answers, via="sms", handlers=handlers)
    return True
