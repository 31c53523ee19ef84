"""Secrets (the bot token, a webhook secret) kept out of everything articlebot prints or logs.

python-telegram-bot puts the token in its API URLs, which it logs at DEBUG and which appear in
its exceptions ("The token … was rejected") and in error pages a proxy echoes back. Whatever
reaches standard error passes through `redact`: log records (their tracebacks too) and the CLI's
one-line errors and `--debug` tracebacks.
"""

from __future__ import annotations

import logging

MASK = "<token>"
_SECRETS: set[str] = set()


def register(secret: str) -> None:
    """Hide `secret` from now on; for a bot token, its secret half (after the colon) is enough."""
    hidden = secret.split(":", 1)[-1].strip()
    if not hidden or hidden in _SECRETS:
        return
    if not _SECRETS:
        _install_log_redaction()
    _SECRETS.add(hidden)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, MASK)
    return text


def _install_log_redaction() -> None:
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info:
            # Formatted now, so the handler prints this redacted text rather than formatting its own.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
