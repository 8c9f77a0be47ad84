"""Structured logs: one JSON object a line (structlog), with the trace id and secrets redacted.

Every stdlib logger in the hub goes through the same processors, so `log.info(...)` calls in
channel code become JSON too. Secrets are removed at the last step before rendering: the values
of every HUB_*_PASSWORD/TOKEN/SECRET setting, passwords in database/Redis URLs, bearer tokens
and Authorization headers, wherever they appear (message, arguments, tracebacks).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from structlog.typing import EventDict, Processor

from hub.ops.context import current_trace_id
from hub.settings import Settings

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"(password|token|secret|auth)", re.IGNORECASE)
_PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)([^\"',}\s]+(?: [^\"',}\s]+)?)"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"()\bhub_[A-Za-z0-9_-]{20,}"),  # our API tokens, wherever they show up
    re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)"),  # user:password@ in any URL
)


def secret_values(settings: Settings) -> list[str]:
    """The values of secret settings (and URL passwords), longest first so overlaps redact fully."""
    found: set[str] = set()
    for name, value in settings.model_dump().items():
        if isinstance(value, str) and value and _SECRET_NAME.search(name):
            found.add(value)
    for url in (settings.database_url, settings.redis_url):
        if url and (password := urlsplit(url).password):
            found.add(password)
    return sorted((v for v in found if len(v) >= 4), key=len, reverse=True)


class Redactor:
    """Removes known secret values and secret-looking patterns from strings, recursively."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s]

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            value = pattern.sub(_replacement, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: REDACTED if _is_secret_key(k) else self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def __call__(self, _logger: Any, _name: str, event_dict: EventDict) -> EventDict:
        """The structlog processor: last before rendering, after tracebacks became text."""
        return {k: REDACTED if _is_secret_key(k) else self.value(v) for k, v in event_dict.items()}


def _replacement(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) == 3:
        return f"{groups[0]}{REDACTED}{groups[2]}"
    return f"{groups[0]}{REDACTED}"


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in {"password", "token", "secret", "authorization", "auth_token"}


class RedactingFilter(logging.Filter):
    """For plain stdlib handlers: redacts the formatted message and drops the args."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        return True


def add_trace_id(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every line names the request or job it belongs to."""
    trace_id = current_trace_id()
    if trace_id is not None:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


def _chain() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_id,
        structlog.stdlib.ExtraAdder(),
    ]


def configure(settings: Settings, *, stream: Any = None) -> Redactor:
    """Route stdlib and structlog loggers through one chain: JSON (default) or text for a terminal."""
    redactor = Redactor(secret_values(settings))
    pre = _chain()
    renderer: Processor = (structlog.processors.JSONRenderer() if settings.log_format == "json"
                           else structlog.dev.ConsoleRenderer(colors=False))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redactor, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_hub_ops", False)]:
        root.removeHandler(old)
    handler._hub_ops = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    structlog.configure(
        processors=[*pre, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return redactor
