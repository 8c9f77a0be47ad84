"""Move the customer's open case to another state of its workflow."""

from __future__ import annotations

from pydantic import Field

from hub.routing import workflows
from hub.routing.actions.base import ActionContext, Params, action, fail
from hub.routing.errors import TransitionError


class MoveCase(Params):
    to: str = Field(min_length=1, max_length=60)
    only_from: list[str] = Field(default_factory=list, description="skip quietly unless the case is in one of these")


@action("move_case", "move the customer's open case to another state of its workflow", MoveCase)
async def run(ctx: ActionContext, params: MoveCase) -> None:
    case = await ctx.case()
    if case is None or case.state == params.to or (params.only_from and case.state not in params.only_from):
        return
    try:
        await workflows.move_case(ctx.session, case, params.to, actor=ctx.actor, handlers=ctx.handlers)
    except TransitionError as exc:
        raise fail(str(exc), "to") from None
