"""Agents, passwords (scrypt) and API tokens (stored as SHA-256, shown once)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.store.models import ROLES, Agent, ApiToken, AuditEvent
from hub.store.types import utcnow

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 10
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def hash_password(password: str) -> str:
    """scrypt with a random salt, encoded as `scrypt$n$r$p$salt$hash`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    enc = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${enc(salt).decode()}${enc(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check of a password against its stored scrypt hash."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, n, r, p, salt, digest = stored.split("$")
    computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(computed, base64.b64decode(digest))


def check_password_policy(password: str) -> None:
    """At least MIN_PASSWORD characters, and not all one kind of character."""
    if len(password) < MIN_PASSWORD:
        raise AccountError("password", f"password must have at least {MIN_PASSWORD} characters")
    if password.isdigit() or password.isalpha():
        raise AccountError("password", "password must mix letters with digits or symbols")


def new_password() -> str:
    """A random password that passes the policy, for `hub init` and `hub demo`."""
    return secrets.token_urlsafe(12) + "7"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_agent(
    session: AsyncSession, email: str, *, role: str, name: str | None = None, password: str | None = None,
    actor: str = "system",
) -> Agent:
    """Create an agent; the email must be new and the role one of ROLES."""
    email = email.strip().lower()
    if role not in ROLES:
        raise AccountError("role", f"role must be one of {', '.join(ROLES)}")
    if "@" not in email:
        raise AccountError("email", f"not an email address: {email!r}")
    if (await session.execute(select(Agent).where(Agent.email == email))).scalar_one_or_none():
        raise AccountError("email", f"an agent with email {email} exists already")
    if password is not None:
        check_password_policy(password)
    agent = Agent(email=email, name=name or email.split("@")[0].title(), role=role,
                  password_hash=hash_password(password) if password else None)
    session.add(agent)
    await session.flush()
    session.add(AuditEvent(actor=actor, action="agent.created", entity="agent", entity_id=agent.id,
                           data={"role": role}))
    return agent


async def create_token(session: AsyncSession, agent: Agent, name: str = "cli", ttl: timedelta | None = None) -> str:
    """Create an API token for an agent and return it; only its hash is kept. Sessions pass a `ttl`."""
    token = "hub_" + secrets.token_urlsafe(32)
    assert agent.id is not None
    session.add(ApiToken(agent_id=agent.id, token_hash=token_hash(token), name=name,
                         expires_at=utcnow() + ttl if ttl is not None else None))
    session.add(AuditEvent(actor=agent.email, action="token.created", entity="agent", entity_id=agent.id,
                           data={"name": name}))
    await session.flush()
    return token


async def agent_for_token(session: AsyncSession, token: str) -> Agent | None:
    """The active agent owning a live token, or None."""
    found = await session.execute(
        select(Agent).join(ApiToken, col(ApiToken.agent_id) == col(Agent.id)).where(
            ApiToken.token_hash == token_hash(token), col(ApiToken.revoked_at).is_(None), col(Agent.active).is_(True),
            or_(col(ApiToken.expires_at).is_(None), col(ApiToken.expires_at) > utcnow()),
        )
    )
    return found.scalar_one_or_none()


async def agent_by_email(session: AsyncSession, email: str) -> Agent | None:
    found = await session.execute(select(Agent).where(Agent.email == email.strip().lower()))
    return found.scalar_one_or_none()


async def login(session: AsyncSession, email: str, password: str) -> Agent | None:
    """The agent when the password matches, else None (same answer for unknown emails)."""
    agent = await agent_by_email(session, email)
    if agent is None or not agent.active:
        verify_password(password, _DUMMY_HASH)  # same work as a real check: no user enumeration by timing
        return None
    if not verify_password(password, agent.password_hash):
        return None
    return agent
