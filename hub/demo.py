"""Seed a demo hotel: agents, teams, ~50 customers in every stage, conversations on every channel."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from hub import accounts
from hub.core.calls import log_call
from hub.core.envelopes import Address, AddressKind, CallLog, Channel, Direction, Inbound
from hub.core.identity import normalise_phone
from hub.core.ingest import IngestContext, ingest
from hub.runtime import Runtime
from hub.store.models import (
    LIFECYCLE_STAGES,
    Agent,
    Case,
    CaseTransition,
    Complaint,
    Customer,
    Intervention,
    Team,
    TeamMember,
)
from hub.store.types import utcnow

HOTEL_MAIL = "reception@aurora.hotel.test"
HOTEL_PHONE = "+390612345678"
FIRST = ["Giulia", "Marco", "Sara", "Luca", "Anna", "Paolo", "Chiara", "John", "Emma", "Hans", "Marie", "Carlos",
         "Yuki", "Olivia", "Matteo", "Francesca", "Lorenzo", "Sofia", "Pierre", "Ingrid"]
LAST = ["Bianchi", "Rossi", "Ferrari", "Esposito", "Romano", "Smith", "Müller", "Dubois", "García", "Tanaka",
        "Colombo", "Ricci", "Marino", "Greco", "Bruno"]
TEAMS = {"Reception": ["marco", "sara"], "Housekeeping": ["elena"], "Maintenance": ["luca"]}
AGENTS = [("marco", "Marco Conti", "agent"), ("sara", "Sara Neri", "agent"), ("luca", "Luca Gallo", "agent"),
          ("elena", "Elena Fontana", "agent"), ("mara", "Mara Villa", "marketer")]
MESSAGES = [
    ("email", "Late check-out", "Hello, could we check out at 1pm on Sunday? Thank you."),
    ("email", "Prenotazione cena", "Buongiorno, vorremmo prenotare un tavolo per due stasera alle 20."),
    ("sms", None, "La doccia della 214 non scarica bene, potete mandare qualcuno?"),
    ("email", "Parking", "Is there a parking space for a small car?"),
    ("sms", None, "Arriviamo verso le 22, la reception è aperta?"),
]


async def is_seeded(runtime: Runtime) -> bool:
    async with runtime.factory() as session:
        return bool((await session.execute(select(func.count()).select_from(Customer))).scalar_one())


async def ensure_admin(runtime: Runtime, email: str) -> str:
    """Create or reset the demo admin and return its fresh password."""
    password = accounts.new_password()
    async with runtime.factory() as session, session.begin():
        agent = await accounts.agent_by_email(session, email)
        if agent is None:
            await accounts.add_agent(session, email, role="admin", name="Hotel Admin", password=password)
        else:
            agent.password_hash = accounts.hash_password(password)
    return password


async def seed(runtime: Runtime, customers: int = 50, seed_value: int = 7) -> None:
    """Populate an empty database with a believable hotel (deterministic for a given seed)."""
    rng = random.Random(seed_value)
    ctx = runtime.ingest_context
    async with runtime.factory() as session, session.begin():
        await _seed_staff(session)
    now = utcnow()
    for n in range(customers):
        name = f"{FIRST[n % len(FIRST)]} {LAST[(n * 7) % len(LAST)]}"
        async with runtime.factory() as session, session.begin():
            await _seed_customer(session, ctx, n, name, rng, now)
    async with runtime.factory() as session, session.begin():
        await _seed_complaint(session, ctx, now)
    # Rules last: the seeded complaint above is built by hand, so no rule doubles it.
    async with runtime.factory() as session, session.begin():
        _seed_rules(session)


async def _seed_staff(session: AsyncSession) -> None:
    agents = {}
    for handle, name, role in AGENTS:
        agents[handle] = await accounts.add_agent(session, f"{handle}@aurora.hotel.test", role=role, name=name,
                                                  password=accounts.new_password())
    for team_name, members in TEAMS.items():
        team = Team(name=team_name)
        session.add(team)
        await session.flush()
        assert team.id is not None
        session.add_all([TeamMember(team_id=team.id, agent_id=agents[m].id or 0) for m in members])


def _seed_rules(session: AsyncSession) -> None:
    """The default routing rules: complaint words open a complaint and hand out the work."""
    from hub.routing.defaults import DEFAULT_RULES
    from hub.store.models import Rule

    session.add_all([Rule(**data) for data in DEFAULT_RULES])


def _inbound(n: int, name: str, channel: str, subject: str | None, body: str, at: datetime) -> Inbound:
    if channel == "email":
        local = name.lower().replace(" ", ".").replace("ü", "u").replace("í", "i")
        sender = Address(AddressKind.EMAIL, f"{local}{n}@example.com", name)
        recipient = Address(AddressKind.EMAIL, HOTEL_MAIL)
    else:
        sender = Address(AddressKind.PHONE, normalise_phone(f"+39 347 {1000000 + n * 7919 % 8999999}"), name)
        recipient = Address(AddressKind.PHONE, HOTEL_PHONE)
    return Inbound(channel=Channel(channel), external_id=f"demo-{n}-{channel}", sender=sender, recipient=recipient,
                   received_at=at, body_text=body, subject=subject, visible_text=body)


async def _seed_customer(session: AsyncSession, ctx: IngestContext, n: int, name: str, rng: random.Random,
                         now: datetime) -> None:
    channel, subject, body = MESSAGES[n % len(MESSAGES)]
    at = now - timedelta(hours=rng.randint(1, 24 * 20))
    result = await ingest(session, _inbound(n, name, channel, subject, body, at), ctx)
    customer = await session.get(Customer, result.customer_id)
    assert customer is not None
    customer.lifecycle_stage = LIFECYCLE_STAGES[n % len(LIFECYCLE_STAGES)]
    customer.display_name = name
    customer.language = "en" if FIRST[n % len(FIRST)] in {"John", "Emma", "Olivia"} else "it"
    if n % 4 == 0:
        await log_call(session, CallLog(
            external_id=f"CAdemo{n:030d}", direction=Direction.IN, caller=Address(AddressKind.PHONE, normalise_phone(
                f"+39 06 {5550000 + n}")), callee=Address(AddressKind.PHONE, HOTEL_PHONE),
            started_at=at - timedelta(hours=2), duration_s=rng.randint(0, 300),
            disposition="no-answer" if n % 8 == 0 else "answered"), ctx.handlers)


async def _seed_complaint(session: AsyncSession, ctx: IngestContext, now: datetime) -> None:
    item = Inbound(
        channel=Channel.EMAIL, external_id="demo-complaint@example.com",
        sender=Address(AddressKind.EMAIL, "giulia.bianchi@example.com", "Giulia Bianchi"),
        recipient=Address(AddressKind.EMAIL, HOTEL_MAIL), received_at=now - timedelta(minutes=40),
        subject="Reclamo: aria condizionata rotta, stanza 312",
        body_text="Buongiorno, l'aria condizionata della stanza 312 non funziona da ieri sera. Giulia",
    )
    result = await ingest(session, item, ctx)
    customer = await session.get(Customer, result.customer_id)
    assert customer is not None and customer.id is not None
    customer.display_name, customer.lifecycle_stage, customer.tags = "Giulia Bianchi", "key", ["vip"]
    case = Case(customer_id=customer.id, workflow="hotel_stay", state="complaint", opened_at=now - timedelta(days=2))
    session.add(case)
    await session.flush()
    assert case.id is not None
    for a, b in (("arrived", "services_ok"), ("services_ok", "complaint")):
        session.add(CaseTransition(case_id=case.id, from_state=a, to_state=b, actor="demo"))
    complaint = Complaint(customer_id=customer.id, case_id=case.id, conversation_id=result.conversation_id,
                          message_id=result.message_id, title=item.subject or "", category="maintenance",
                          severity="high", opened_by="rule:complaint words", sla_due_at=now + timedelta(hours=4))
    session.add(complaint)
    await session.flush()
    teams = {t.name: t for t in (await session.execute(select(Team))).scalars()}
    luca = (await session.execute(select(Agent).where(Agent.email == "luca@aurora.hotel.test"))).scalar_one()
    session.add(Intervention(complaint_id=complaint.id, customer_id=customer.id, team_id=teams["Maintenance"].id,
                             assignee_agent_id=luca.id, description="Repair the air conditioning in room 312",
                             due_at=now + timedelta(hours=1)))
    session.add(Intervention(complaint_id=complaint.id, customer_id=customer.id, team_id=teams["Housekeeping"].id,
                             description="Bring a fan to room 312 meanwhile", due_at=now + timedelta(hours=2),
                             status="done", done_at=now))


