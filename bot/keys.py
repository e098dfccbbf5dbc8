"""/keys: list the chat's API keys by prefix, issue one (its secret shown once), revoke one."""

from __future__ import annotations

from html import escape

from django.utils.translation import gettext as _

from accounts.models import Account, ApiKey
from accounts.services import api_key_create, api_key_revoke

from . import telegram
from .formatting import code
from .selectors import active_keys
from .updates import Callback, Sender

# A chat that keeps pressing "Create" should not mint keys without end.
MAX_ACTIVE_KEYS = 20
KEY_NAME = "telegram"

Buttons = list[list[tuple[str, str]]]


def _list_view(account: Account, notice: str = "") -> tuple[str, Buttons]:
    keys = active_keys(account)
    lines = [notice, ""] if notice else []
    if not keys:
        lines.append(_("You have no API keys yet."))
    else:
        lines += [_("Your API keys:"), ""]
        for key in keys:
            used = (
                _("last used %(date)s") % {"date": f"{key.last_used_at:%Y-%m-%d}"}
                if key.last_used_at
                else _("never used")
            )
            created = _("created %(date)s") % {"date": f"{key.created_at:%Y-%m-%d}"}
            lines.append(f"{code(key.prefix + '…')} {escape(key.name)} — {created}, {used}")
    buttons: Buttons = [[(_("Create a key"), "keys:new")]]
    buttons += [[(_("Revoke %(prefix)s…") % {"prefix": key.prefix}, f"keys:revoke:{key.pk}")] for key in keys]
    return "\n".join(lines), buttons


def keys(sender: Sender, account: Account, args: str) -> None:
    """List the keys with buttons to create and revoke."""
    text, buttons = _list_view(account)
    telegram.send(sender.chat_id, text, buttons)


def _show(callback: Callback, text: str, buttons: Buttons | None = None) -> None:
    if callback.message_id is None:
        telegram.send(callback.sender.chat_id, text, buttons)
    else:
        telegram.edit(callback.sender.chat_id, callback.message_id, text, buttons)


def _own_key(account: Account, key_id: str) -> ApiKey | None:
    if not key_id.isdigit():
        return None
    return ApiKey.objects.filter(pk=int(key_id), account=account, revoked_at__isnull=True).first()


def on_callback(callback: Callback, account: Account, action: str) -> None:
    """Handle the /keys buttons: `new`, `list`, `revoke:<id>` (asks first) and `revoke-yes:<id>`."""
    verb, _sep, key_id = action.partition(":")
    if verb == "new":
        if len(active_keys(account)) >= MAX_ACTIVE_KEYS:
            telegram.answer_callback(
                callback.query_id, _("You already have %(max)s keys; revoke one first.") % {"max": MAX_ACTIVE_KEYS}
            )
            return
        api_key, secret = api_key_create(account=account, name=KEY_NAME)
        telegram.answer_callback(callback.query_id)
        text = _(
            "Your new API key:\n\n%(secret)s\n\n"
            "Copy it now: it is shown only this once. Send it in the header %(header)s."
        ) % {"secret": code(secret), "header": code("Authorization: Bearer orb_live_…")}
        # A message of its own, so the secret stays out of the list message that is edited later.
        telegram.send(callback.sender.chat_id, text)
        _show(callback, *_list_view(account))
        return
    if verb == "list":
        telegram.answer_callback(callback.query_id)
        _show(callback, *_list_view(account))
        return
    api_key = _own_key(account, key_id)
    if verb not in ("revoke", "revoke-yes") or api_key is None:
        telegram.answer_callback(callback.query_id, _("This key is no longer active."))
        _show(callback, *_list_view(account))
        return
    telegram.answer_callback(callback.query_id)
    if verb == "revoke":
        question = _("Revoke %(key)s? Requests with it stop working within seconds.") % {
            "key": code(api_key.prefix + "…")
        }
        _show(callback, question, [[(_("Yes, revoke"), f"keys:revoke-yes:{api_key.pk}"), (_("Cancel"), "keys:list")]])
        return
    api_key_revoke(api_key=api_key)
    _show(callback, *_list_view(account, _("Key %(key)s revoked.") % {"key": code(api_key.prefix + "…")}))
