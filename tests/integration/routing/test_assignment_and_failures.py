"""Round-robin fairness, least-loaded picks, failing rules recorded and skipped, the loop guard, overdue."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from hub import accounts
from hub.routing import assignment, checks
from hub.routing.wiring import rules_changed
from hub.runtime import Runtime
from hub.store.models import (
    Agent,
    AuditEvent,
    Complaint,
    Conversation,
    Intervention,
    Message,
    OutboxItem,
    Rule,
    Team,
    TeamMember,
)
from hub.store.types import utcnow
from tests.integration.routing.conftest import guest, make_hotel, receive
from tests.support.builders import email


async def test_round_robin_is_fair_over_1000_conversations(runtime: Runtime) -> None:
    async with runtime.factory() as session, session.begin():
        team = Team(name="Reception")
        session.add(team)
        await session.flush()
        assert team.id is not None
        offline: int | None = None
        for n in range(7):
            agent = await accounts.add_agent(session, f"a{n}@hotel.test", role="agent", password="correct-horse-9")
            agent.online = n != 3
            offline = agent.id if n == 3 else offline
            session.add(TeamMember(team_id=team.id, agent_id=agent.id))
        team_id = team.id
    picks: Counter[int] = Counter()
    for _ in range(10):
        async with runtime.factory() as session, session.begin():
            for _ in range(100):
                chosen = await assignment.pick_agent(session, team_id, "round_robin")
                assert chosen is not None
                picks[chosen] += 1
    assert offline not in picks and len(picks) == 6 and sum(picks.values()) == 1000
    assert max(picks.values()) - min(picks.values()) <= 1


async def test_least_loaded_and_skills(runtime: Runtime) -> None:
    hotel = await make_hotel(runtime, rules=False)
    customer_id = await guest(runtime, email="x@example.com")
    async with runtime.factory() as session, session.begin():
        session.add(Conversation(customer_id=customer_id, channel="email", thread_token="t1",
                                 assignee_id=hotel.agents["marco"]))
        sara = await session.get(Agent, hotel.agents["sara"])
        assert sara is not None
        sara.skills = ["german"]
    async with runtime.factory() as session, session.begin():
        team = hotel.teams["Reception"]
        assert await assignment.pick_agent(session, team, "least_loaded") == hotel.agents["sara"]
        assert await assignment.pick_agent(session, team, "skills", ["german"]) == hotel.agents["sara"]
        assert await assignment.pick_agent(session, team, "skills", ["japanese"]) is None


async def test_a_failing_rule_is_recorded_and_skipped(runtime: Runtime) -> None:
    await make_hotel(runtime, rules=False)
    async with runtime.factory() as session, session.begin():
        session.add(Rule(name="broken", event="message.received", position=1, actions=[
            {"type": "tags", "add": ["seen-by-broken"]},
            {"type": "assign", "team": "Night shift"},  # no such team: fails when applied
        ]))
        session.add(Rule(name="fine", event="message.received", position=2,
                         actions=[{"type": "tags", "add": ["ok"]}]))
    rules_changed(runtime)
    result = await receive(runtime, email("f1@example.com", body="hello"))
    async with runtime.factory() as session:
        conversation = await session.get(Conversation, result.conversation_id)
        message = await session.get(Message, result.message_id)
        failed = (await session.execute(select(AuditEvent).where(AuditEvent.action == "rule.failed"))).scalar_one()
    assert message is not None  # the message is never lost
    assert conversation is not None and conversation.tags == ["ok"]  # the broken rule's tag was rolled back
    assert failed.data["action"] == "assign" and "Night shift" in failed.data["error"]


async def test_loop_guard_stops_rules_that_trigger_each_other(runtime: Runtime) -> None:
    await make_hotel(runtime, rules=False)
    async with runtime.factory() as session, session.begin():
        session.add(Rule(name="reopen", event="conversation.status_changed", position=1,
                         condition={"field": "event.data.to", "op": "equals", "value": "resolved"},
                         actions=[{"type": "set_status", "status": "open"}]))
        session.add(Rule(name="close", event="conversation.status_changed", position=2,
                         condition={"field": "event.data.to", "op": "equals", "value": "open"},
                         actions=[{"type": "set_status", "status": "resolved"}]))
        session.add(Rule(name="close on arrival", event="message.received", position=3,
                         actions=[{"type": "set_status", "status": "resolved"}]))
    rules_changed(runtime)
    await receive(runtime, email("loop@example.com", body="hello"))
    async with runtime.factory() as session:
        guards = (await session.execute(select(AuditEvent).where(AuditEvent.action == "rules.loop_guard"))).scalars()
        assert len(guards.all()) == 1


async def test_overdue_raised_once_and_escalates(runtime: Runtime) -> None:
    await make_hotel(runtime)
    await guest(runtime, email="giulia@example.com")
    result = await receive(runtime, email("o1@example.com", "giulia@example.com", subject="Camera sporca"))
    later = utcnow() + timedelta(hours=3)
    assert await checks.check_overdue(runtime, later) == 1  # housekeeping (2h) is late, maintenance (4h) not
    assert await checks.check_overdue(runtime, later) == 0
    async with runtime.factory() as session:
        conversation = await session.get(Conversation, result.conversation_id)
        late = (await session.execute(select(Intervention).where(Intervention.overdue_notified_at.is_not(None))))
    assert conversation is not None and conversation.priority == "urgent"
    assert len(late.scalars().all()) == 1


async def test_sla_breach_is_an_event_rules_act_on(runtime: Runtime) -> None:
    await make_hotel(runtime, rules=False)
    async with runtime.factory() as session, session.begin():
        session.add(Rule(name="breach", event="sla.breached", condition={
            "field": "sla.kind", "op": "equals", "value": "first_response"},
            actions=[{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]))
    rules_changed(runtime)
    await receive(runtime, email("s1@example.com", body="hello"))
    await checks.check_sla(runtime, utcnow() + timedelta(days=30))
    await checks.check_sla(runtime, utcnow() + timedelta(days=31))
    async with runtime.factory() as session:
        hooks = (await session.execute(select(OutboxItem).where(OutboxItem.kind == "webhook"))).scalars().all()
        breaches = (await session.execute(select(AuditEvent).where(AuditEvent.action == "sla.breached"))).scalars()
    assert len(hooks) == 1 and hooks[0].payload["url"] == "http://127.0.0.1:9/hook"
    assert sorted(b.data["kind"] for b in breaches) == ["first_response", "resolution"]


async def test_complaint_needs_admin_reason_to_resolve_with_open_work(runtime: Runtime) -> None:
    from hub.routing import complaints
    from hub.routing.errors import TransitionError

    await make_hotel(runtime)
    await guest(runtime, email="giulia@example.com")
    await receive(runtime, email("r1@example.com", "giulia@example.com", subject="Complaint: broken shower"))
    async with runtime.factory() as session, session.begin():
        complaint = (await session.execute(select(Complaint))).scalar_one()
        try:
            await complaints.set_complaint_status(session, complaint, "resolved", actor="sara", role="agent")
        except TransitionError as exc:
            assert "not done" in str(exc)
        else:
            raise AssertionError("resolved with open interventions")
        await complaints.set_complaint_status(session, complaint, "resolved", actor="admin", role="admin",
                                              reason="guest left early", handlers=tuple(runtime.handlers))
        assert complaint.status == "resolved"
