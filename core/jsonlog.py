"""Log lines as JSON, one object per line (`LOG_FORMAT=json`), for log pipelines that index fields.

Each object carries `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`,
`request_id` (core/request_ids.py, "-" outside a request) and, when there is one, `exception` (the
traceback text). Secrets are already masked when the record is made (core/redaction.py); the
traceback is masked again here in case a handler formats one the record factory did not see.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from core.redaction import redact


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        # json.dumps escapes newlines, so a traceback stays on its line.
        return json.dumps(line, ensure_ascii=False, default=str)
