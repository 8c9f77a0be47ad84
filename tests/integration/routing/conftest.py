"""Shared set-up for routing stories: teams, agents, a guest with a hotel stay, the default rules."""

from __future__ import annotations

from dataclasses import dataclass

from hub import accounts
from hub.core import outbox
from hub.core.envelopes import Inbound
from hub.core.ingest import IngestResult, ingest
from hub.routing import workflows
from hub.routing.defaults import DEFAULT_RULES
from hub.routing.wiring import rules_changed
from hub.runtime import Runtime
from hub.store.models import Customer, Identity, Rule, Team, TeamMember


@dataclass
class Hotel:
    teams: dict[str, int]
    agents: dict[str, int]


async def make_hotel(rt: Runtime, *, rules: bool = True) -> Hotel:
    """Reception (two agents), Housekeeping and Maintenance (one each), and the default rules."""
    staff = {"Reception": ["marco", "sara"], "Housekeeping": ["elena"], "Maintenance": ["luca"]}
    teams: dict[str, int] = {}
    agents: dict[str, int] = {}
    async with rt.factory() as session, session.begin():
        for name, members in staff.items():
            team = Team(name=name)
            session.add(team)
            await session.flush()
            assert team.id is not None
            teams[name] = team.id
            for handle in members:
                agent = await accounts.add_agent(session, f"{handle}@hotel.test", role="agent",
                                                 password="correct-horse-9")
                assert agent.id is not None
                agents[handle] = agent.id
                session.add(TeamMember(team_id=team.id, agent_id=agent.id))
        if rules:
            for data in DEFAULT_RULES:
                session.add(Rule(**data))
    rules_changed(rt)
    return Hotel(teams, agents)


async def guest(rt: Runtime, email: str | None = None, phone: str | None = None, state: str = "services_ok") -> int:
    """A customer with a hotel_stay case walked from arrived to `state`."""
    async with rt.factory() as session, session.begin():
        customer = Customer(display_name="Giulia Bianchi", language="it")
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        if email:
            session.add(Identity(customer_id=customer.id, kind="email", value=email))
        if phone:
            session.add(Identity(customer_id=customer.id, kind="phone", value=phone))
        case = await workflows.open_case(session, customer.id, "hotel_stay", actor="test")
        if state != "arrived":
            await workflows.move_case(session, case, state, actor="test", role="agent",
                                      handlers=tuple(rt.handlers))
        return customer.id


async def receive(rt: Runtime, item: Inbound) -> IngestResult:
    async with outbox.unit_of_work(rt.factory, rt.queue) as session:
        return await ingest(session, item, rt.ingest_context)
