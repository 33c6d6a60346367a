"""One logging setup for every process: structured JSON lines (or plain text) on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from common.config import LogSettings

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Libraries whose debug records cost real time on hot paths; keep them at WARNING unless asked.
_NOISY_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; `extra={...}` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(settings: LogSettings | None = None, *, level: str | None = None) -> None:
    """Install the project's log handler on the root logger (idempotent)."""
    settings = settings or LogSettings()
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.level).upper())
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def logging_dict_config(settings: LogSettings | None = None) -> dict[str, Any]:
    """The same setup as `configure_logging`, as a `logging.config.dictConfig` dict, for frameworks
    that install logging themselves from such a dict (Faust's `logging_config` setting)."""
    settings = settings or LogSettings()
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if settings.format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"refinery": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "refinery", "stream": sys.stderr}
        },
        "root": {"level": settings.level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": "WARNING"} for name in _NOISY_LOGGERS},
    }
