"""The whole story on SQLite and PostgreSQL: complaint, interventions, case moves, survey by SMS."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.routing import complaints, workflows
from hub.runtime import Runtime
from hub.store.models import AuditEvent, Case, Complaint, Conversation, Intervention, Message, Survey
from tests.integration.routing.conftest import guest, make_hotel, receive
from tests.support.builders import email, sms

COMPLAINT = "Reclamo: aria condizionata rotta, stanza 312"


async def _case(rt: Runtime, customer_id: int) -> Case:
    async with rt.factory() as session:
        return (await session.execute(select(Case).where(Case.customer_id == customer_id))).scalar_one()


async def test_complaint_interventions_and_case(runtime: Runtime) -> None:
    hotel = await make_hotel(runtime)
    customer_id = await guest(runtime, email="giulia@example.com")
    result = await receive(runtime, email("c1@example.com", "giulia@example.com", subject=COMPLAINT,
                                          body="L'aria condizionata non va da ieri sera."))
    async with runtime.factory() as session:
        complaint = (await session.execute(select(Complaint))).scalar_one()
        work = list((await session.execute(select(Intervention).order_by(Intervention.id))).scalars())
        conversation = await session.get(Conversation, result.conversation_id)
    assert complaint.customer_id == customer_id and complaint.severity == "high"
    assert complaint.message_id == result.message_id and complaint.sla_due_at is not None
    assert {w.team_id for w in work} == {hotel.teams["Housekeeping"], hotel.teams["Maintenance"]}
    assert all(w.due_at is not None and w.description for w in work)
    assert conversation is not None and conversation.team_id == hotel.teams["Reception"]
    assert conversation.assignee_id in (hotel.agents["marco"], hotel.agents["sara"])
    assert conversation.priority == "high" and "complaint" in conversation.tags
    assert (await _case(runtime, customer_id)).state == "complaint"

    # A second message in the same thread does not open a second complaint.
    await receive(runtime, email("c2@example.com", "giulia@example.com", subject=f"Re: {COMPLAINT}",
                                 body="Ancora rotta!", refs=("c1@example.com",)))
    handlers = tuple(runtime.handlers)
    async with runtime.factory() as session, session.begin():
        assert len((await session.execute(select(Complaint))).scalars().all()) == 1
        first, second = (await session.execute(select(Intervention).order_by(Intervention.id))).scalars()
        await complaints.set_intervention_status(session, first, "doing", actor="elena", handlers=handlers)
        await complaints.set_intervention_status(session, first, "done", actor="elena", note="fan brought",
                                                 handlers=handlers)
    async with runtime.factory() as session:
        assert (await session.get(Complaint, complaint.id)).status == "in_progress"  # type: ignore[union-attr]
    assert (await _case(runtime, customer_id)).state == "complaint"
    async with runtime.factory() as session, session.begin():
        second = await session.get(Intervention, second.id)
        assert second is not None
        await complaints.set_intervention_status(session, second, "done", actor="luca", handlers=handlers)
    async with runtime.factory() as session:
        resolved = await session.get(Complaint, complaint.id)
    assert resolved is not None and resolved.status == "resolved"
    assert (await _case(runtime, customer_id)).state == "services_ok"


async def _to_departure(runtime: Runtime, customer_id: int) -> None:
    async with runtime.factory() as session, session.begin():
        case = (await session.execute(select(Case).where(Case.customer_id == customer_id))).scalar_one()
        await workflows.move_case(session, case, "departure_survey", actor="sara", role="agent",
                                  handlers=tuple(runtime.handlers))


@pytest.mark.parametrize(("complain", "answer", "closed"), [
    (False, "5 4 5", "closed_success"),
    (False, "2 3 1", "closed_with_complaints"),
    (True, "5 5 5", "closed_with_complaints"),
])
async def test_departure_survey_by_sms(runtime: Runtime, complain: bool, answer: str, closed: str) -> None:
    await make_hotel(runtime)
    phone = "+393471112233"
    customer_id = await guest(runtime, phone=phone)
    if complain:
        await receive(runtime, sms("SMc", phone, body="La doccia è rotta, inaccettabile"))
    await _to_departure(runtime, customer_id)
    async with runtime.factory() as session:
        survey = (await session.execute(select(Survey))).scalar_one()
        question = await session.get(Message, survey.message_id)
    assert survey.channel == "sms" and question is not None and question.direction == "out"
    assert "1 (poor) to 5" in question.body_text
    await receive(runtime, sms("SMa", phone, body=answer))
    async with runtime.factory() as session:
        survey = (await session.execute(select(Survey))).scalar_one()
        audits = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert survey.status == "answered" and survey.answers == [int(d) for d in answer.split()]
    assert "survey.answered" in audits
    case = await _case(runtime, customer_id)
    assert case.state == closed and case.closed_at is not None


async def test_survey_ignores_text_that_is_not_an_answer(runtime: Runtime) -> None:
    await make_hotel(runtime)
    customer_id = await guest(runtime, phone="+393471112299")
    await _to_departure(runtime, customer_id)
    await receive(runtime, sms("SMx", "+393471112299", body="Grazie di tutto, a presto!"))
    assert (await _case(runtime, customer_id)).state == "departure_survey"
