"""Campaign templates: sandboxed Jinja2, checked at save time, rendered per customer (pure).

A template that fails here fails when the marketer saves it, never in a worker at send time:
syntax, unknown filters, and attribute access the sandbox would refuse are all reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.environment import Template as JinjaTemplate
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# Names an attacker reaches for to climb out of the sandbox; refused even where the sandbox
# would only fail at render time, so the marketer hears about it when saving.
_UNSAFE_NAMES = frozenset({"mro", "format", "format_map", "gi_frame", "gi_code", "cr_frame", "f_globals",
                           "func_globals", "func_code", "im_func", "im_self", "tb_frame"})
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = frozenset("^{}\\[~]|€")


class TemplateProblem(ValueError):
    """A template that may not be saved: which part (`subject`, `body_text`, `body_html`), line, why."""

    def __init__(self, part: str, line: int | None, message: str) -> None:
        where = f"{part} line {line}" if line else part
        super().__init__(f"{where}: {message}")
        self.part, self.line, self.message = part, line, message


@dataclass(frozen=True, slots=True)
class Rendered:
    """One personalised message; `segments` is set for SMS."""

    body_text: str
    subject: str | None = None
    body_html: str | None = None
    segments: int | None = None


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """The parts of a stored template, detached from the ORM."""

    name: str
    channel: str
    language: str
    body_text: str
    subject: str | None = None
    body_html: str | None = None
    purpose: str = "marketing"


def _env(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=autoescape, trim_blocks=True, keep_trailing_newline=False)


TEXT_ENV = _env(False)
HTML_ENV = _env(True)


def _unsafe_access(tree: nodes.Template) -> list[tuple[int, str]]:
    found = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(getattr(node, "arg", None), "value", None)
        if isinstance(key, str) and (key.startswith("_") or key in _UNSAFE_NAMES):
            found.append((node.lineno, f"access to {key!r} is not allowed in templates"))
    return found


def check_part(part: str, source: str | None, *, html: bool = False) -> None:
    """Compile one part; TemplateProblem on syntax errors, unknown filters or unsafe access."""
    if not source:
        return
    env = HTML_ENV if html else TEXT_ENV
    try:
        tree = env.parse(source)
        env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(part, exc.lineno, exc.message or str(exc)) from None
    except TemplateError as exc:
        raise TemplateProblem(part, None, str(exc)) from None
    for line, message in _unsafe_access(tree):
        raise TemplateProblem(part, line, message)


SAMPLE_CONTEXT: dict[str, Any] = {
    "customer": {"id": 1, "name": "Ada Lovelace", "first_name": "Ada", "language": "en", "email": "ada@example.com",
                 "phone": "+390000000", "lifecycle_stage": "key", "tags": ["vip"], "attributes": {"room": "101"},
                 "timezone": "Europe/Rome"},
    "case": {"state": "arrived", "workflow": "hotel_stay", "data": {}},
    "campaign": {"id": 1, "name": "Sample"},
    "unsubscribe_url": "https://hub.example/u/1.sig",
}


def validate(source: TemplateSource) -> None:
    """Check every part, then render against a sample so sandbox refusals surface now."""
    check_part("subject", source.subject)
    check_part("body_text", source.body_text)
    check_part("body_html", source.body_html, html=True)
    if source.channel == "email" and not (source.subject or "").strip():
        raise TemplateProblem("subject", None, "an email template needs a subject")
    if not source.body_text.strip():
        raise TemplateProblem("body_text", None, "the text body is empty")
    try:
        render(source, SAMPLE_CONTEXT)
    except SecurityError as exc:
        raise TemplateProblem("template", None, f"refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateProblem("template", None, str(exc)) from None


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> JinjaTemplate:
    return (HTML_ENV if html else TEXT_ENV).from_string(source)


@lru_cache(maxsize=256)
def needs(source: TemplateSource) -> frozenset[str]:
    """The top-level variables a template reads (`customer`, `case`, ...), so unused ones are not loaded."""
    found: set[str] = set()
    for part, html in ((source.subject, False), (source.body_text, False), (source.body_html, True)):
        if part:
            found |= meta.find_undeclared_variables((HTML_ENV if html else TEXT_ENV).parse(part))
    return frozenset(found)


def sms_segments(text: str) -> int:
    """How many SMS parts `text` needs: GSM-7 160/153 per part, otherwise UCS-2 70/67."""
    if all(ch in GSM7 or ch in GSM7_EXT for ch in text):
        units = sum(2 if ch in GSM7_EXT else 1 for ch in text)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
    return 1 if units <= 70 else math.ceil(units / 67)


def render(source: TemplateSource, context: Mapping[str, Any]) -> Rendered:
    """The message for one customer; raises jinja2 errors only for templates never validated."""
    text = _compiled(source.body_text, False).render(context).strip()
    subject = _compiled(source.subject, False).render(context).strip() if source.subject else None
    html = _compiled(source.body_html, True).render(context) if source.body_html else None
    if subject is not None:
        subject = " ".join(subject.split())  # a header value may not carry line breaks
    segments = sms_segments(text) if source.channel in {"sms", "whatsapp"} else None
    return Rendered(body_text=text, subject=subject, body_html=html, segments=segments)


def pick_variant(sources: Sequence[TemplateSource], language: str | None, default: str = "en") -> TemplateSource | None:
    """The variant in the customer's language, else the default language, else the first."""
    by_lang = {s.language: s for s in sources}
    for wanted in (language, (language or "").split("-")[0], default):
        if wanted and wanted in by_lang:
            return by_lang[wanted]
    return sources[0] if sources else None


def customer_context(customer: Mapping[str, Any], addresses: Mapping[str, str], case: Mapping[str, Any] | None,
                     campaign: Mapping[str, Any], links: Mapping[str, str]) -> dict[str, Any]:
    """The variables a template sees: plain data only, never ORM objects (the sandbox's first line)."""
    name = str(customer.get("display_name") or "")
    return {
        "customer": {
            "id": customer.get("id"), "name": name, "first_name": name.split(" ")[0] if name else "",
            "language": customer.get("language"), "lifecycle_stage": customer.get("lifecycle_stage"),
            "tags": list(customer.get("tags") or []), "attributes": dict(customer.get("attributes") or {}),
            "timezone": customer.get("timezone"), "email": addresses.get("email"), "phone": addresses.get("phone"),
        },
        "case": dict(case or {}),
        "campaign": dict(campaign),
        **links,
    }


def languages(sources: Iterable[TemplateSource]) -> list[str]:
    """The languages a template exists in."""
    return sorted({s.language for s in sources})
