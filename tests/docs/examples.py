"""Running the docs' code examples and judging their output.

An executable example is a fenced block tagged `bash`, `python` or `javascript`; the HTML comment right
above it says how to run and check it, as space-separated `key=value` pairs:

- `account=default|poor|limited` — whose key runs it: a funded customer (the default); one whose balance
  is under MIN_BALANCE_USD; or one whose key allows 1 request a minute and has just used it;
- `json=PATH` or `json=PATH:VALUE` — stdout is one JSON document with a non-null value at PATH (dotted,
  list indexes as numbers), equal to VALUE when given;
- `sse=PATH` — stdout is a server-sent event stream ending in `data: [DONE]` whose last JSON event has PATH;
- `expect=REGEX` — REGEX (no spaces: write `\\s`) matches somewhere in stdout (multi-line mode).

Every example has at least one check. Whatever the checks, any `cost` in JSON output must be a number.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ACCOUNTS = ("default", "poor", "limited")
TIMEOUT_S = 30


@dataclass(frozen=True)
class Directive:
    account: str = "default"
    json: tuple[str, ...] = ()
    sse: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    checks: int = field(default=0, compare=False)


def directive_parse(text: str) -> Directive:
    """Read an example's `<!-- example: … -->` text; raise ValueError when it is malformed."""
    values: dict[str, list[str]] = {"account": [], "json": [], "sse": [], "expect": []}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or key not in values or not value:
            raise ValueError(f"bad example directive item {item!r}")
        values[key].append(value)
    account = values["account"][-1] if values["account"] else "default"
    if account not in ACCOUNTS:
        raise ValueError(f"unknown account {account!r}")
    for pattern in values["expect"]:
        re.compile(pattern)
    checks = len(values["json"]) + len(values["sse"]) + len(values["expect"])
    return Directive(account, tuple(values["json"]), tuple(values["sse"]), tuple(values["expect"]), checks)


def run(language: str, code: str, env: dict[str, str], node_dir: Path | None) -> subprocess.CompletedProcess:
    """Run one example the way a reader would: bash (strict mode), the venv's python, or node."""
    if language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if language == "python":
        command = [sys.executable, "-c", code]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if language == "javascript":
        assert node_dir is not None
        # An ES module next to node_modules, so that `import OpenAI from "openai"` resolves.
        script = node_dir / f"example-{uuid.uuid4().hex}.mjs"
        script.write_text(code, encoding="utf-8")
        try:
            return subprocess.run(["node", str(script)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        finally:
            script.unlink(missing_ok=True)
    raise ValueError(f"not an executable language: {language}")


def _walk(document: Any, path: str) -> Any:
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def _costs_are_numbers(document: Any) -> list[str]:
    problems = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "cost" and not (isinstance(value, int | Decimal) and not isinstance(value, bool)):
                problems.append(f"`cost` is {value!r}, not a number")
            problems += _costs_are_numbers(value)
    elif isinstance(document, list):
        for value in document:
            problems += _costs_are_numbers(value)
    return problems


def _path_check(document: Any, spec: str, where: str) -> list[str]:
    path, _, expected = spec.partition(":")
    try:
        value = _walk(document, path)
    except KeyError:
        return [f"{where} has no {path}"]
    if value is None:
        return [f"{where}: {path} is null"]
    if expected and str(value) != expected:
        return [f"{where}: {path} is {value!r}, expected {expected!r}"]
    return []


def sse_events(stdout: str) -> tuple[list[Any], bool]:
    """The JSON payloads of an SSE stream, and whether it ended with [DONE]."""
    payloads, done = [], False
    for event in stdout.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if not data:
            continue  # a comment such as a keepalive
        if data == "[DONE]":
            done = True
            continue
        payloads.append(json.loads(data, parse_float=Decimal))
    return payloads, done


def output_problems(directive: Directive, stdout: str) -> list[str]:
    """What is wrong with an example's output; empty when it makes sense."""
    problems: list[str] = []
    if not stdout.strip():
        return ["the example printed nothing"]
    if directive.json:
        try:
            document = json.loads(stdout, parse_float=Decimal)
        except ValueError as exc:
            return [f"stdout is not JSON ({exc}): {stdout[:500]}"]
        problems += _costs_are_numbers(document)
        for spec in directive.json:
            problems += _path_check(document, spec, "the JSON output")
    if directive.sse:
        try:
            events, done = sse_events(stdout)
        except ValueError as exc:
            return [f"stdout is not an SSE stream of JSON events ({exc}): {stdout[:500]}"]
        if not done:
            problems.append("the stream did not end with data: [DONE]")
        if not events:
            problems.append("the stream carried no JSON events")
        for event in events:
            problems += _costs_are_numbers(event)
        for spec in directive.sse:
            problems += _path_check(events[-1] if events else {}, spec, "the last event")
    for pattern in directive.expect:
        if not re.search(pattern, stdout, re.MULTILINE):
            problems.append(f"stdout does not match {pattern!r}: {stdout[:500]}")
    return problems
