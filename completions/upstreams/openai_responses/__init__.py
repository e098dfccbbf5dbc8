"""The `openai-responses` upstream kind: providers speaking OpenAI's Responses API (POST /responses).

Two ways a request reaches it:

- natively, from the Responses surface: the client's body goes as it is but for `model` (and our own
  `models`/`provider`), so reasoning items with their `encrypted_content`, `include`, built-in tools, `store`
  and whatever else the provider takes reach it. The answer comes back as the provider sent it, with our id
  (the response is stored under it, as a translated one is), our model name and the exact cost in its usage;
  a stream is relayed event by event, only the response snapshots of `response.created`/`.in_progress`
  rewritten (our id and model) and the final `response.completed` (`.incomplete`, `.failed`) held back until
  the cost is known (`Passthrough`, in native.py). `previous_response_id` names one of our stored responses, which the
  provider never saw: the stored conversation goes first in `input` instead (item ids dropped but reasoning
  items', which the provider needs with their `encrypted_content`), and `previous_response_id` is not
  forwarded;
- translated, from a surface that speaks Chat Completions (chat completions, and Messages by way of it): the
  chat body becomes a Responses body (`responses_body_of`), and the answer a chat completion
  (`chat_answer_of`) or chat chunks (`chat_events`), in translated.py.

The translation tables are the docs page "Responses (OpenAI)", section "Chat completions on Responses routes";
each row is tested in tests/completions/test_responses_translated.py.
"""

from __future__ import annotations

from ..base import Upstream
from ..openai_chat import bearer, completion_chars
from .native import PASSTHROUGH
from .translated import chat_answer_of, chat_events, translate


def answer_ok(body: dict) -> bool:
    """Whether a plain answer is a `response` object the relay can settle."""
    return body.get("object") == "response" and isinstance(body.get("output"), list)


UPSTREAM = Upstream(
    kind="openai-responses",
    endpoint="/responses",
    auth=bearer,
    events=chat_events,
    completion_chars=completion_chars,
    answer_ok=answer_ok,
    accepts=frozenset({"openai-chat"}),
    translate=translate,
    plain=chat_answer_of,
    passthrough=PASSTHROUGH,
)
