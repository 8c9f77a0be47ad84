"""Give the conversation to an agent, or to a team's next agent by round-robin, load or skills."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hub.core import conversations
from hub.routing import assignment
from hub.routing.actions.base import ActionContext, Params, action, agent_id, fail, team_id


class Assign(Params):
    agent: str | None = Field(default=None, min_length=3, max_length=320)
    team: str | None = Field(default=None, min_length=1, max_length=120)
    strategy: Literal["round_robin", "least_loaded", "skills"] = "round_robin"
    skills: list[str] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _one_target(self) -> Assign:
        if (self.agent is None) == (self.team is None):
            raise ValueError("give exactly one of agent or team")
        return self


@action("assign", "assign the conversation to an agent or a team member (round-robin, least-loaded, skills)",
        Assign)
async def run(ctx: ActionContext, params: Assign) -> None:
    conversation = await ctx.conversation()
    if conversation is None:
        raise fail("this event has no conversation to assign")
    if params.agent is not None:
        chosen: int | None = await agent_id(ctx, params.agent)
        team = conversation.team_id
    else:
        assert params.team is not None
        team = await team_id(ctx, params.team)
        chosen = await assignment.pick_agent(ctx.session, team, params.strategy, params.skills)
    await conversations.assign(ctx.session, conversation, agent_id=chosen, team_id=team, actor=ctx.actor,
                               handlers=ctx.handlers)
