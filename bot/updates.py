"""Telegram updates parsed into the few events the bot acts on; anything malformed is refused here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class MalformedUpdate(ValueError):
    """The update lacks a field the bot needs, or has one of the wrong type."""


@dataclass(frozen=True, slots=True)
class Sender:
    """The Telegram user behind an event and the chat the bot answers in."""

    user_id: int
    chat_id: int
    private: bool
    username: str
    full_name: str
    language_code: str


@dataclass(frozen=True, slots=True)
class Command:
    """A `/command args` message."""

    sender: Sender
    name: str
    args: str


@dataclass(frozen=True, slots=True)
class Callback:
    """A press on one of the bot's inline buttons."""

    sender: Sender
    query_id: str
    message_id: int | None
    data: str


@dataclass(frozen=True, slots=True)
class PreCheckout:
    """Telegram asks whether to go ahead with a payment."""

    query_id: str
    user_id: int
    language_code: str
    currency: str
    total_amount: int
    payload: str


@dataclass(frozen=True, slots=True)
class Payment:
    """A `successful_payment` service message: the money has been taken."""

    sender: Sender
    currency: str
    total_amount: int
    payload: str
    telegram_charge_id: str
    provider_charge_id: str


Event = Command | Callback | PreCheckout | Payment


def _get(obj: Any, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if not isinstance(obj, dict):
        raise MalformedUpdate(f"expected an object holding {key!r}")
    if key not in obj or obj[key] is None:
        if default is ...:
            raise MalformedUpdate(f"missing {key!r}")
        return default
    value = obj[key]
    # bool is an int subclass; no id or amount is ever a bool.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedUpdate(f"{key!r} has the wrong type")
    return value


def _user(user: Any, chat: Any | None) -> Sender:
    user_id = _get(user, "id", int)
    names = (_get(user, "first_name", str, ""), _get(user, "last_name", str, ""))
    chat_id = _get(chat, "id", int) if chat is not None else user_id
    chat_type = _get(chat, "type", str, "private") if chat is not None else "private"
    return Sender(
        user_id=user_id,
        chat_id=chat_id,
        private=chat_type == "private",
        username=_get(user, "username", str, ""),
        full_name=" ".join(n for n in names if n).strip(),
        language_code=_get(user, "language_code", str, ""),
    )


def _message_event(message: dict) -> Event | None:
    sender = _user(_get(message, "from", dict), _get(message, "chat", dict))
    payment = _get(message, "successful_payment", dict, None)
    if payment is not None:
        return Payment(
            sender=sender,
            currency=_get(payment, "currency", str),
            total_amount=_get(payment, "total_amount", int),
            payload=_get(payment, "invoice_payload", str),
            telegram_charge_id=_get(payment, "telegram_payment_charge_id", str),
            provider_charge_id=_get(payment, "provider_payment_charge_id", str, ""),
        )
    text = _get(message, "text", str, "")
    if not text.startswith("/"):
        return None
    head, _, args = text.partition(" ")
    # "/balance@ML_Router_bot" in groups names the bot; the command is the part before "@".
    name = head[1:].split("@", 1)[0].lower()
    return Command(sender=sender, name=name, args=args.strip())


def parse_update(update: Any) -> Event | None:
    """Return the event an update carries, None for updates the bot ignores; raise MalformedUpdate."""
    _get(update, "update_id", int)
    if "message" in update:
        return _message_event(_get(update, "message", dict))
    if "callback_query" in update:
        query = _get(update, "callback_query", dict)
        message = _get(query, "message", dict, None)
        chat = _get(message, "chat", dict) if message is not None else None
        return Callback(
            sender=_user(_get(query, "from", dict), chat),
            query_id=_get(query, "id", str),
            # A message older than 48 h comes without its id; the answer is then a new message.
            message_id=_get(message, "message_id", int) if message is not None else None,
            data=_get(query, "data", str, ""),
        )
    if "pre_checkout_query" in update:
        query = _get(update, "pre_checkout_query", dict)
        user = _get(query, "from", dict)
        return PreCheckout(
            query_id=_get(query, "id", str),
            user_id=_get(user, "id", int),
            language_code=_get(user, "language_code", str, ""),
            currency=_get(query, "currency", str),
            total_amount=_get(query, "total_amount", int),
            payload=_get(query, "invoice_payload", str),
        )
    return None
