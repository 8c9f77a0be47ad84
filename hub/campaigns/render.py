"""Per-recipient content: template variants, personalisation, tracking links and unsubscribe headers."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.campaigns import templates, tokens
from hub.campaigns.templates import Rendered, TemplateSource
from hub.store.models import Template

_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Links:
    """The signed URLs of one recipient."""

    secret: str
    public_url: str
    mail_domain: str
    recipient_id: int

    def unsubscribe_url(self) -> str:
        return f"{self.public_url}/u/{tokens.sign(self.secret, 'unsub', self.recipient_id)}"

    def unsubscribe_mailto(self) -> str:
        token = tokens.sign_address(self.secret, "unsub", self.recipient_id)
        return f"mailto:{tokens.UNSUBSCRIBE_LOCAL}+{token}@{self.mail_domain}?subject=unsubscribe"

    def open_url(self) -> str:
        return f"{self.public_url}/t/o/{tokens.sign(self.secret, 'open', self.recipient_id)}.gif"

    def click_url(self, target: str) -> str:
        # The target is inside the MAC: a changed `u` fails, so the endpoint is no open redirect.
        token = tokens.sign(self.secret, "click", self.recipient_id, target)
        return f"{self.public_url}/t/c/{token}?u={quote(target, safe='')}"


def track_html(body: str, links: Links) -> str:
    """Rewrite http(s) links through the click redirect (not the unsubscribe link) and add the pixel."""
    own = links.public_url + "/u/"

    def swap(match: re.Match[str]) -> str:
        target = html.unescape(match.group(1))
        if target.startswith(own):
            return match.group(0)
        return f'href="{html.escape(links.click_url(target))}"'

    pixel = f'<img src="{html.escape(links.open_url())}" width="1" height="1" alt="" style="display:none">'
    tracked = _HREF.sub(swap, body)
    if "</body>" in tracked.lower():
        at = tracked.lower().rindex("</body>")
        return tracked[:at] + pixel + tracked[at:]
    return tracked + pixel


def email_headers(links: Links, campaign_id: int, unsubscribe_url: str | None = None) -> tuple[tuple[str, str], ...]:
    """RFC 2369 List-Unsubscribe with mailto and https, and RFC 8058 one-click."""
    return (
        ("List-Unsubscribe", f"<{links.unsubscribe_mailto()}>, <{unsubscribe_url or links.unsubscribe_url()}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "bulk"),
        ("X-Hub-Campaign", str(campaign_id)),
        ("X-Hub-Recipient", str(links.recipient_id)),
    )


async def load_sources(session: AsyncSession, names: Sequence[str], channel: str) -> dict[str, list[TemplateSource]]:
    """Every language variant of the named templates on this channel."""
    rows = await session.execute(
        select(Template).where(col(Template.name).in_(list(names)), col(Template.channel) == channel)
        .order_by(col(Template.language))
    )
    found: dict[str, list[TemplateSource]] = {}
    for t in rows.scalars():
        found.setdefault(t.name, []).append(source_of(t))
    return found


def source_of(t: Template) -> TemplateSource:
    return TemplateSource(name=t.name, channel=t.channel, language=t.language, body_text=t.body_text,
                          subject=t.subject, body_html=t.body_html, purpose=t.purpose)


def personalise(source: TemplateSource, context: Mapping[str, Any], links: Links, *, track: bool) -> Rendered:
    """Render one recipient's message, with tracking when asked and the body is HTML."""
    rendered = templates.render(source, context)
    if track and rendered.body_html:
        return Rendered(rendered.body_text, rendered.subject, track_html(rendered.body_html, links), rendered.segments)
    return rendered
