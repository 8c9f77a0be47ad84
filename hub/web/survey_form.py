"""The public survey page behind the signed link sent by email: /s/{token}."""

from __future__ import annotations

from html import escape

from aiohttp import web

from hub.core import outbox
from hub.keys import RUNTIME
from hub.routing import surveys
from hub.store.models import Survey

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>How was your stay?</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>{content}</main></body></html>"""


def _page(content: str, status: int = 200) -> web.Response:
    return web.Response(text=_PAGE.format(content=content), content_type="text/html", status=status)


def _form(survey: Survey, token: str, error: str = "") -> str:
    rows = []
    for n, question in enumerate(survey.questions):
        choices = "".join(f'<label><input type="radio" name="q{n}" value="{v}" required> {v}</label> '
                          for v in range(1, 6))
        rows.append(f"<fieldset><legend>{escape(question)}</legend>{choices}</fieldset>")
    shown = f'<p role="alert">{escape(error)}</p>' if error else ""
    return (f"<h1>How was your stay?</h1>{shown}<form method=post action=\"/s/{escape(token)}\">"
            f"{''.join(rows)}<button type=submit>Send</button></form>")


async def _survey(request: web.Request) -> tuple[Survey | None, str]:
    token = request.match_info["token"]
    survey_id = surveys.verify(token, request.app[RUNTIME].settings.secret_key)
    if survey_id is None:
        return None, token
    async with request.app[RUNTIME].factory() as session:
        return await session.get(Survey, survey_id), token


async def survey_page(request: web.Request) -> web.Response:
    survey, token = await _survey(request)
    if survey is None:
        return _page("<h1>This link is not valid.</h1>", 404)
    if survey.status != "sent":
        return _page("<h1>Thank you, we have your answers already.</h1>")
    return _page(_form(survey, token))


async def survey_submit(request: web.Request) -> web.Response:
    """Store the answers and raise `survey.answered` (the case closes on it)."""
    survey, token = await _survey(request)
    if survey is None:
        return _page("<h1>This link is not valid.</h1>", 404)
    form = await request.post()
    try:
        answers = [int(str(form.get(f"q{n}", ""))) for n in range(len(survey.questions))]
    except ValueError:
        return _page(_form(survey, token, "Please answer every question from 1 to 5."), 400)
    runtime = request.app[RUNTIME]
    async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
        current = await session.get(Survey, survey.id)
        assert current is not None
        if current.status != "sent":
            return _page("<h1>Thank you, we have your answers already.</h1>")
        try:
            await surveys.record_answers(session, current, answers, via="web", handlers=tuple(runtime.handlers))
        except ValueError as exc:
            return _page(_form(survey, token, str(exc)), 400)
    return _page("<h1>Thank you!</h1><p>Your answers help us improve.</p>")
