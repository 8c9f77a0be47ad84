"""Choosing an agent in a team: round-robin, least-loaded or by skills; offline agents are skipped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.store.models import Agent, AssignmentCursor, Conversation, TeamMember
from hub.store.types import utcnow

STRATEGIES = ("round_robin", "least_loaded", "skills")
_LOADED = ("open", "pending")


def next_in_turn(candidates: Sequence[int], last: int | None) -> int | None:
    """The first candidate id after `last` in id order, wrapping round; pure."""
    if not candidates:
        return None
    ordered = sorted(candidates)
    if last is None:
        return ordered[0]
    return next((c for c in ordered if c > last), ordered[0])


def least_loaded(loads: Mapping[int, int]) -> int | None:
    """The candidate with the fewest open conversations, lowest id on a tie; pure."""
    if not loads:
        return None
    return min(loads, key=lambda agent_id: (loads[agent_id], agent_id))


async def candidates(session: AsyncSession, team_id: int, skills: Sequence[str] = ()) -> list[Agent]:
    """Active, online members of the team having all these skills."""
    found = await session.execute(
        select(Agent).join(TeamMember, col(TeamMember.agent_id) == col(Agent.id))
        .where(col(TeamMember.team_id) == team_id, col(Agent.active).is_(True), col(Agent.online).is_(True))
        .order_by(col(Agent.id))
    )
    wanted = set(skills)
    return [a for a in found.scalars() if wanted <= set(a.skills)]


async def _loads(session: AsyncSession, agent_ids: Sequence[int]) -> dict[int, int]:
    found = await session.execute(
        select(col(Conversation.assignee_id), func.count()).where(
            col(Conversation.assignee_id).in_(agent_ids), col(Conversation.status).in_(_LOADED)
        ).group_by(col(Conversation.assignee_id))
    )
    counted = {int(agent_id): int(n) for agent_id, n in found.all() if agent_id is not None}
    return {agent_id: counted.get(agent_id, 0) for agent_id in agent_ids}


async def _turn(session: AsyncSession, team_id: int, agent_ids: Sequence[int]) -> int | None:
    # FOR UPDATE serialises concurrent ingests on PostgreSQL; SQLite has one writer anyway.
    cursor = (await session.execute(
        select(AssignmentCursor).where(col(AssignmentCursor.team_id) == team_id).with_for_update()
    )).scalar_one_or_none()
    if cursor is None:
        cursor = AssignmentCursor(team_id=team_id)
        session.add(cursor)
    chosen = next_in_turn(agent_ids, cursor.last_agent_id)
    cursor.last_agent_id, cursor.updated_at = chosen, utcnow()
    return chosen


async def pick_agent(
    session: AsyncSession, team_id: int, strategy: str = "round_robin", skills: Sequence[str] = ()
) -> int | None:
    """The agent of the team who should get the next piece of work, or None if nobody is available."""
    ids = [a.id for a in await candidates(session, team_id, skills) if a.id is not None]
    if not ids:
        return None
    if strategy == "round_robin":
        return await _turn(session, team_id, ids)
    return least_loaded(await _loads(session, ids))
