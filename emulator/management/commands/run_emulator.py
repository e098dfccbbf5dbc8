"""`manage.py run_emulator`: serve the built-in upstream emulator standalone under gevent."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from emulator import wsgi


class Command(BaseCommand):
    """Run the fake OpenAI-compatible provider used by demos, tests and benchmarks."""

    help = "Serve the ML Router upstream EMULATOR (a fake OpenAI-compatible provider) on host:port."
    requires_system_checks: list[str] = []  # the emulator needs no database or project checks to start

    def add_arguments(self, parser: CommandParser) -> None:
        """--host and --port."""
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8100, help="Port to bind (default 8100).")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print where it listens, then serve until interrupted."""
        host, port = options["host"], options["port"]
        self.stdout.write(
            f"Upstream EMULATOR (fake OpenAI-compatible provider, no real LLM) listening on "
            f"http://{host}:{port}/v1 (e.g. POST http://{host}:{port}/v1/chat/completions)"
        )
        self.stdout.flush()
        try:
            wsgi.serve(host, port)
        except KeyboardInterrupt:
            self.stdout.write("Emulator stopped.")
