from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import Account
from completions.demo import demo_seed


class Command(BaseCommand):
    help = "Seed the demo (demo/… models, an operator, a funded customer and its key); safe to run again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--credentials", type=Path, default=settings.BASE_DIR / ".demo" / "credentials.json")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the demo is served.")

    def handle(self, *args, **options) -> None:
        creds = demo_seed(credentials_path=options["credentials"])
        base = options["base_url"].rstrip("/")
        balance = Account.objects.get(pk=creds.account_id).balance
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "ML Router demo is ready (models demo/… are answered by the built-in upstream emulator).",
                    f"  Admin:     {base}/admin/  user {creds.operator_username}  password {creds.operator_password}",
                    f"  Customer:  account #{creds.account_id}, balance ${balance:.2f}",
                    f"  API key:   {creds.api_key}",
                    f"  API base:  {base}/v1",
                    f"  Docs:      {base}/docs/  (English: {base}/docs/en/)",
                    "  Try it:",
                    f"    curl {base}/v1/chat/completions -H 'Authorization: Bearer {creds.api_key}' \\",
                    "      -H 'Content-Type: application/json' \\",
                    '      -d \'{"model": "demo/chat-small", "messages": [{"role": "user", "content": "Hello"}]}\'',
                    f"    curl {base}/v1/embeddings -H 'Authorization: Bearer {creds.api_key}' \\",
                    "      -H 'Content-Type: application/json' \\",
                    '      -d \'{"model": "demo/embed-small", "input": ["Hello", "world"]}\'',
                    f"    curl {base}/v1/responses -H 'Authorization: Bearer {creds.api_key}' \\",
                    "      -H 'Content-Type: application/json' \\",
                    '      -d \'{"model": "demo/responses-small", "input": "Hello"}\'',
                    '  Codex CLI (npm install -g @openai/codex; the docs page "Codex CLI" has the config.toml):',
                    f"    MLROUTER_API_KEY={creds.api_key} codex exec --skip-git-repo-check -m demo/chat-small \\",
                    "      -c model_provider=mlrouter -c web_search=disabled \\",
                    f'      -c \'model_providers.mlrouter={{name="ML Router", base_url="{base}/v1", '
                    'env_key="MLROUTER_API_KEY", wire_api="responses"}\' "say hi"',
                    "  Claude Code (Anthropic's Messages API, passed through to the emulator):",
                    f"    ANTHROPIC_BASE_URL={base} ANTHROPIC_API_KEY={creds.api_key} \\",
                    "      ANTHROPIC_MODEL=demo/claude-small ANTHROPIC_DEFAULT_HAIKU_MODEL=demo/claude-small \\",
                    "      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 claude -p 'say hi'",
                    "",
                ]
            )
        )
