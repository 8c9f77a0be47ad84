"""Who may see which conversations: admins all; agents their teams', their own and the team-less ones.

A conversation without a team belongs to the whole front desk (it came in on an inbox no team
owns), so every agent sees it even after one of them took it; a team's conversations stay with
that team's members and with whoever they are assigned to.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.store.models import Agent, Conversation, TeamMember

# Marketers work on campaigns and customer profiles; conversations are private to service staff.
CONVERSATION_ROLES = ("admin", "agent")


@dataclass(frozen=True, slots=True)
class Scope:
    """The calling agent's role, id and team ids: enough to filter rows and live events."""

    agent_id: int
    role: str
    team_ids: frozenset[int]
    name: str = ""
    language: str = "en"

    @property
    def sees_conversations(self) -> bool:
        return self.role in CONVERSATION_ROLES

    def conversation_clause(self) -> ColumnElement[bool]:
        """A WHERE clause on Conversation limiting rows to what this agent may see."""
        if self.role == "admin":
            return true()
        if not self.sees_conversations:
            return false()
        shared = col(Conversation.team_id).is_(None)
        mine = col(Conversation.assignee_id) == self.agent_id
        if not self.team_ids:
            return or_(shared, mine)
        return or_(shared, col(Conversation.team_id).in_(sorted(self.team_ids)), mine)

    def sees(self, conversation: Conversation) -> bool:
        """The same rule as conversation_clause, for one loaded row."""
        if self.role == "admin":
            return True
        if not self.sees_conversations:
            return False
        return (conversation.team_id is None or conversation.team_id in self.team_ids
                or conversation.assignee_id == self.agent_id)

    def sees_event(self, team_id: int | None, assignee_id: int | None = None) -> bool:
        """Whether a live event about a conversation with this team (and assignee, when known) is for us."""
        if self.role == "admin":
            return True
        if not self.sees_conversations:
            return False
        return team_id is None or team_id in self.team_ids or assignee_id == self.agent_id


async def load_scope(session: AsyncSession, agent: Agent) -> Scope:
    """Read the agent's team memberships once per request."""
    assert agent.id is not None
    rows = await session.execute(select(TeamMember.team_id).where(TeamMember.agent_id == agent.id))
    return Scope(agent.id, agent.role, frozenset(rows.scalars()), agent.name, agent.language)
