"""The catalog (providers, models, routes) and one Generation row per request."""

from __future__ import annotations

import os
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models

SUPPORTED_PARAMETERS_HELP = (
    'Request parameters this route takes, as clients name them (e.g. ["temperature", "tools", "reasoning"]); '
    "others are dropped before forwarding. Empty: not declared, the body is forwarded unchanged."
)


def supported_parameters_validate(value: object) -> None:
    """A declared list of parameters is a list of names (null: not declared)."""
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise ValidationError("supported parameters must be a list of parameter names")


class Provider(models.Model):
    """An OpenAI-compatible upstream: where requests for a model are forwarded."""

    class DataCollection(models.TextChoices):
        ALLOW = "allow", "may store or train on requests"
        DENY = "deny", "declared not to store or train on requests"
        UNKNOWN = "unknown", "not declared"

    name = models.SlugField(max_length=64, unique=True)
    base_url = models.URLField(max_length=300, help_text="OpenAI-compatible base, e.g. https://api.openai.com/v1")
    api_key = models.CharField(max_length=500, blank=True, help_text="Stored here, never shown in full.")
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the key; wins over api_key."
    )
    connect_timeout_s = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("5"))
    read_timeout_s = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("60"), help_text="Longest silence allowed upstream."
    )
    extra_headers = models.JSONField(default=dict, blank=True)
    # What `provider.data_collection: "deny"` keeps: only providers declared not to collect.
    data_collection = models.CharField(max_length=8, choices=DataCollection.choices, default=DataCollection.UNKNOWN)
    supported_parameters = models.JSONField(
        null=True, blank=True, validators=[supported_parameters_validate], help_text=SUPPORTED_PARAMETERS_HELP
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def resolved_api_key(self) -> str:
        """The key sent upstream: the environment variable when named, else the stored key."""
        if self.api_key_env:
            return os.environ.get(self.api_key_env, "")
        return self.api_key

    @property
    def api_key_masked(self) -> str:
        key = self.resolved_api_key()
        if not key:
            return "—"
        return f"…{key[-4:]}" if len(key) > 12 else "set"


def _text_only() -> list[str]:
    return ["text"]


class Model(models.Model):
    """A model sold under a public id such as `openai/gpt-4o-mini`; served through its routes."""

    public_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    context_length = models.PositiveIntegerField(default=0)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    # Metadata shown by GET /v1/models, in OpenRouter's terms.
    input_modalities = models.JSONField(default=_text_only, blank=True, help_text='e.g. ["text", "image"]')
    output_modalities = models.JSONField(default=_text_only, blank=True, help_text='e.g. ["text"]')
    tokenizer = models.CharField(max_length=64, blank=True, help_text="e.g. GPT, Claude, Llama3")
    is_moderated = models.BooleanField(default=False, help_text="The provider moderates prompts.")
    supported_parameters = models.JSONField(
        default=list, blank=True, help_text='Request parameters the model takes, e.g. ["tools", "temperature"]'
    )
    enabled = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["public_id"]

    def __str__(self) -> str:
        return self.public_id

    @property
    def owned_by(self) -> str:
        return self.public_id.split("/", 1)[0] if "/" in self.public_id else "mlrouter"


class Route(models.Model):
    """One way to serve a model: a provider and its name for the model; lower priority is tried first."""

    class Api(models.TextChoices):
        """The API the route's provider speaks: one upstream kind each (completions/upstreams/)."""

        OPENAI_CHAT = "openai-chat", "OpenAI Chat Completions"
        ANTHROPIC_MESSAGES = "anthropic-messages", "Anthropic Messages"
        OPENAI_RESPONSES = "openai-responses", "OpenAI Responses"
        OPENAI_EMBEDDINGS = "openai-embeddings", "OpenAI Embeddings"

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="routes")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="routes")
    upstream_model = models.CharField(max_length=200)
    api = models.CharField(
        max_length=32,
        choices=Api.choices,
        default=Api.OPENAI_CHAT,
        help_text="The API the provider speaks for this route; requests in another API are translated to it.",
    )
    priority = models.IntegerField(default=0)
    supported_parameters = models.JSONField(
        null=True,
        blank=True,
        validators=[supported_parameters_validate],
        help_text=SUPPORTED_PARAMETERS_HELP + " Wins over the provider's list.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["model", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "provider", "upstream_model"], name="route_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.model} → {self.provider}:{self.upstream_model}"

    def declared_parameters(self) -> list[str] | None:
        """The parameters this route takes: its own list, else its provider's, else None (not declared)."""
        if self.supported_parameters is not None:
            return self.supported_parameters
        return self.provider.supported_parameters


class Generation(models.Model):
    """One API request (`surface`: chat completions, embeddings, ...): what was asked, what came back, what it cost.

    Its charge is the ledger entry whose idempotency key is `charge:<id>`; token counts say where they
    came from (`upstream` usage or our `estimated` count).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        COMPLETED = "completed", "completed"
        CANCELLED = "cancelled", "cancelled (client disconnected)"
        FAILED = "failed", "failed"

    class UpstreamCostSource(models.TextChoices):
        REPORTED = "reported", "reported by the provider"
        COMPUTED = "computed", "computed from the route's cost"

    class UsageSource(models.TextChoices):
        UPSTREAM = "upstream", "upstream"
        ESTIMATED = "estimated", "estimated"
        NONE = "none", "none"

    id = models.CharField(max_length=64, primary_key=True)
    # A row is written twice per request: it carries only the indexes that reads need (see Meta).
    # Deleting a catalog row or a price these point at (PROTECT) scans the table, which is rare.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="generations", db_index=False
    )
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.PROTECT, related_name="generations", db_index=False)
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="generations", db_index=False)
    price = models.ForeignKey("billing.Price", on_delete=models.PROTECT, related_name="generations", db_index=False)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, null=True, blank=True, db_index=False)
    upstream_model = models.CharField(max_length=200, blank=True)
    upstream_id = models.CharField(max_length=200, blank=True)
    surface = models.CharField(
        max_length=32, default="chat", help_text="The API surface the request came through (`chat`, `embeddings`)."
    )
    stream = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    finish_reason = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0, help_text="Prompt tokens written to the cache.")
    usage_source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.NONE)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal(0))
    upstream_cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    upstream_cost_source = models.CharField(max_length=16, choices=UpstreamCostSource.choices, blank=True)
    margin = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True, help_text="cost − upstream cost; empty: unknown."
    )
    hold_amount = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal(0))
    user = models.CharField(max_length=256, blank=True, help_text="The client's `user` field.")
    origin = models.CharField(max_length=300, blank=True, help_text="The request's HTTP-Referer header.")
    app = models.CharField(max_length=200, blank=True, help_text="The request's X-Title header.")
    request_id = models.CharField(
        max_length=128, blank=True, help_text="The request's `x-request-id` (the client's own when it sent one)."
    )
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("export_generation", "Can export generations as CSV"),
        ]
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["account", "-started_at"]),
            models.Index(fields=["api_key", "started_at"], name="generation_key_started"),
            # Operators look a request up by the x-request-id a customer quotes; set once, at insert.
            models.Index(fields=["request_id"], name="generation_request_id"),
            # The surfaces other than chat are rare at first: their filter reads this, not the whole table.
            # Surface is set at insert and never changed, so the settlement's update stays HOT.
            models.Index(
                fields=["surface", "-started_at"], condition=~models.Q(surface="chat"), name="generation_surface_rare"
            ),
            # The list's model and stream filters: a model the catalog lists may have no recent request (or
            # none at all), and either stream value may be rare, so walking `started_at` for 50 rows can read
            # the whole table. One index write each per request. Stream is set at insert only; the settlement
            # writes the model again, changed only when a fallback model served: otherwise its update stays HOT.
            models.Index(fields=["model", "-started_at"], name="generation_model_started"),
            models.Index(fields=["stream", "-started_at"], name="generation_stream_started"),
        ]

    def __str__(self) -> str:
        return self.id


class StoredResponse(models.Model):
    """A Responses answer kept for `previous_response_id` and `GET /v1/responses/{id}` (`store`, the default).

    Its id is the generation's. Kept for RESPONSES_RETENTION_DAYS, then pruned (completions/tasks.py).
    """

    id = models.CharField(max_length=64, primary_key=True)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="stored_responses")
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, db_index=False)
    model = models.CharField(max_length=200, help_text="The model id the client asked for and was answered by.")
    previous_response_id = models.CharField(max_length=64, blank=True)
    input_items = models.JSONField(help_text="The whole input the model saw: the conversation continued, then its own.")
    output = models.JSONField(help_text="The response's output items.")
    body = models.TextField(help_text="The response object as sent (JSON, its cost exact).")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
