"""Create one intervention per listed team or agent, each with a description and a due time."""

from __future__ import annotations

from pydantic import Field, model_validator
from sqlmodel import col, select

from hub.routing import assignment, complaints
from hub.routing.actions.base import ActionContext, Params, action, agent_id, team_id
from hub.routing.conditions import parse_duration
from hub.store.models import Complaint


class Task(Params):
    team: str | None = Field(default=None, min_length=1, max_length=120)
    agent: str | None = Field(default=None, min_length=3, max_length=320)
    description: str = Field(min_length=1, max_length=2000)
    due_in: str = Field(default="4h", description="a duration such as 30m, 4h, 2d")
    pick: bool = Field(default=False, description="also give it to the team's next agent in turn")

    @model_validator(mode="after")
    def _check(self) -> Task:
        if (self.team is None) == (self.agent is None):
            raise ValueError("give exactly one of team or agent")
        parse_duration(self.due_in)
        return self


class CreateInterventions(Params):
    items: list[Task] = Field(min_length=1, max_length=20)


async def _complaint(ctx: ActionContext) -> Complaint | None:
    if (known := ctx.state.get("complaint_id")) is not None:
        return await ctx.session.get(Complaint, known)
    if ctx.event.conversation_id is None:
        return None
    found = await ctx.session.execute(
        select(Complaint).where(col(Complaint.conversation_id) == ctx.event.conversation_id,
                                col(Complaint.status).in_(complaints.OPEN_COMPLAINT))
        .order_by(col(Complaint.id).desc()).limit(1)
    )
    return found.scalar_one_or_none()


@action("create_interventions", "create an intervention per listed team or agent, with due time and description",
        CreateInterventions)
async def run(ctx: ActionContext, params: CreateInterventions) -> None:
    complaint = await _complaint(ctx)
    if complaint is not None and ctx.state.get("complaint_id") and not ctx.state.get("complaint_new"):
        return  # the complaint was open already and got its interventions then
    for task in params.items:
        team = await team_id(ctx, task.team) if task.team else None
        agent = await agent_id(ctx, task.agent) if task.agent else None
        if team is not None and task.pick:
            agent = await assignment.pick_agent(ctx.session, team, "least_loaded")
        await complaints.add_intervention(
            ctx.session, complaint=complaint, customer_id=ctx.event.customer_id, description=task.description,
            actor=ctx.actor, team_id=team, agent_id=agent, due_at=ctx.now + parse_duration(task.due_in),
            handlers=ctx.handlers,
        )
