"""Send the departure survey of the customer's open case by SMS or email."""

from __future__ import annotations

from typing import Literal

from hub.routing import surveys
from hub.routing.actions.base import ActionContext, Params, action, fail


class SendSurvey(Params):
    channel: Literal["auto", "sms", "email"] = "auto"


@action("send_survey", "send the case's survey by SMS or email (auto: email when known)", SendSurvey)
async def run(ctx: ActionContext, params: SendSurvey) -> None:
    case = await ctx.case()
    if case is None:
        raise fail("the customer has no open case")
    await surveys.send_survey(ctx.session, case, settings=ctx.settings, channel=params.channel, actor=ctx.actor,
                              handlers=ctx.handlers)
