"""Access-log redaction: request lines keep the route, never query strings (raw platform ids) or participant codes."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_SECRET_SEGMENT = re.compile(r"^/(p|i)/[^/?]+")


def redact_path(path: str) -> str:
    """``/s/demo?PROLIFIC_PID=…`` → ``/s/demo?…``; ``/p/{code}/page/2`` → ``/p/…/page/2``."""
    route, sep, _ = path.partition("?")
    return _SECRET_SEGMENT.sub(r"/\1/…", route) + ("?…" if sep else "")


class RedactAccess(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client, method, full path, http version, status)
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = redact_path(str(args[2]))
            record.args = tuple(args)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with the redaction filter on the access handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "app.logredact.RedactAccess"}
    config["handlers"]["access"]["filters"] = ["redact"]
    return config
