"""Builders of Telegram updates as the Bot API sends them."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(500_000)
USER_ID = 777_001


def next_update_id() -> int:
    return next(_ids)


def user(user_id: int = USER_ID, language_code: str | None = "ru", **extra: Any) -> dict:
    data = {"id": user_id, "is_bot": False, "first_name": "Ivan", "last_name": "Petrov", "username": "ivan"}
    if language_code is not None:
        data["language_code"] = language_code
    return data | extra


def message(
    text: str,
    *,
    user_id: int = USER_ID,
    language_code: str | None = "ru",
    chat_type: str = "private",
    update_id: int | None = None,
) -> dict:
    chat_id = user_id if chat_type == "private" else -100_500
    return {
        "update_id": update_id if update_id is not None else next_update_id(),
        "message": {
            "message_id": 10,
            "date": 1_760_000_000,
            "from": user(user_id, language_code),
            "chat": {"id": chat_id, "type": chat_type},
            "text": text,
        },
    }


def callback(data: str, *, user_id: int = USER_ID, language_code: str = "ru", message_id: int | None = 42) -> dict:
    query: dict[str, Any] = {"id": f"cq-{next_update_id()}", "from": user(user_id, language_code), "data": data}
    if message_id is not None:
        query["message"] = {
            "message_id": message_id,
            "date": 1_760_000_000,
            "chat": {"id": user_id, "type": "private"},
            "text": "…",
        }
    return {"update_id": next_update_id(), "callback_query": query}


def pre_checkout(
    payload: str, *, currency: str, total_amount: int, user_id: int = USER_ID, language_code: str = "ru"
) -> dict:
    return {
        "update_id": next_update_id(),
        "pre_checkout_query": {
            "id": f"pcq-{next_update_id()}",
            "from": user(user_id, language_code),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        },
    }


def successful_payment(
    payload: str,
    *,
    currency: str,
    total_amount: int,
    charge_id: str,
    user_id: int = USER_ID,
    language_code: str = "ru",
    update_id: int | None = None,
) -> dict:
    return {
        "update_id": update_id if update_id is not None else next_update_id(),
        "message": {
            "message_id": 11,
            "date": 1_760_000_000,
            "from": user(user_id, language_code),
            "chat": {"id": user_id, "type": "private"},
            "successful_payment": {
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            },
        },
    }
