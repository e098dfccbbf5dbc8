"""LOG_FORMAT=json: one JSON object per line, with the request id and the traceback, secrets masked."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from core.jsonlog import JsonFormatter
from core.request_ids import RequestIdLogFilter, current_request_id

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER_KEY = "orb_live_" + "J" * 40


def formatted(logger: logging.Logger, emit) -> list[dict]:
    """What `emit()` logs through a JSON handler with the request-id filter, one parsed object per line."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    logger.addHandler(handler)
    try:
        emit()
    finally:
        logger.removeHandler(handler)
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]


def test_a_line_carries_time_level_logger_message_and_the_request_id():
    log = logging.getLogger("tests.jsonlog")
    token = current_request_id.set("req_0123abcd")
    try:
        (line,) = formatted(log, lambda: log.warning("charged %s USD", "0.25"))
    finally:
        current_request_id.reset(token)

    assert set(line) == {"time", "level", "logger", "message", "request_id"}
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "tests.jsonlog", "charged 0.25 USD")
    assert line["request_id"] == "req_0123abcd"
    assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0


def test_outside_a_request_the_id_is_a_dash():
    log = logging.getLogger("tests.jsonlog")
    token = current_request_id.set("")  # a request served earlier in this thread leaves its id set
    try:
        (line,) = formatted(log, lambda: log.info("beat"))
    finally:
        current_request_id.reset(token)
    assert line["request_id"] == "-"


def test_an_exception_is_one_field_of_the_same_line_with_its_secrets_masked():
    log = logging.getLogger("tests.jsonlog")

    def fail() -> None:
        try:
            raise RuntimeError(f"upstream refused {CUSTOMER_KEY}")
        except RuntimeError:
            log.exception("settling failed for %s", CUSTOMER_KEY)

    (line,) = formatted(log, fail)

    assert line["message"] == "settling failed for [redacted]"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: upstream refused [redacted]" in line["exception"]
    assert CUSTOMER_KEY not in json.dumps(line)


def test_the_setting_switches_the_process_logs_to_json():
    script = (
        "import django, logging; django.setup(); "
        f"logging.getLogger('billing').warning('low balance for %s', '{CUSTOMER_KEY}')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mlrouter.settings", "LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )

    (line,) = [json.loads(text) for text in done.stderr.splitlines() if text.strip()]
    assert (line["level"], line["logger"], line["request_id"]) == ("WARNING", "billing", "-")
    assert line["message"] == "low balance for [redacted]"


def test_the_default_stays_plain_text():
    script = "import django, logging; django.setup(); logging.getLogger('billing').warning('plain line')"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mlrouter.settings"}
    env.pop("LOG_FORMAT", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stderr.strip().endswith("WARNING billing [-] plain line")
