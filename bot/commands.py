"""The informational commands: /start, /help, /paysupport, /balance, /prices, /usage, /redeem."""

from __future__ import annotations

from html import escape

from django.conf import settings
from django.core.cache import cache
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import Account
from billing.redemptions import RedemptionRefused, code_redeem
from completions.models import Generation
from core.usd import usd_micro

from . import telegram
from .formatting import code, date_text
from .i18n import language_for
from .models import BotSettings
from .selectors import month_start, price_page, recent_generations, spend_since
from .services import LinkRefused, StartOutcome, chat_start
from .updates import Callback, Sender

# Redemption codes are guessable one by one; this many misses per account per hour is plenty for a human.
REDEEM_MISSES_PER_HOUR = 10


def _command_list() -> str:
    lines = [
        _("/balance — balance and spend this month"),
        _("/topup — add funds (Telegram Stars or card)"),
        _("/keys — create and revoke API keys"),
        _("/prices — model prices"),
        _("/usage — your latest requests and their cost"),
        _("/redeem CODE — redeem a promo code"),
        _("/paysupport — help with payments"),
    ]
    base_url = getattr(settings, "PUBLIC_BASE_URL", "")
    if base_url:
        lines.append(_("API base URL for OpenAI SDKs: %(url)s") % {"url": code(base_url.rstrip("/") + "/v1")})
    return "\n".join(lines)


def start(sender: Sender, args: str) -> None:
    """Create or link this chat's account, then greet in the language the account now has."""
    try:
        outcome = chat_start(sender=sender, link_token=args.split(" ", 1)[0] if args else "")
    except LinkRefused:
        with translation.override(language_for(sender.language_code)):
            text = _("This link is invalid, expired or belongs to another chat. Ask for a new one.")
        telegram.send(sender.chat_id, text)
        return
    with translation.override(outcome.account.language):
        _greet(sender, outcome)


def _greet(sender: Sender, outcome: StartOutcome) -> None:
    account = outcome.account
    if outcome.created:
        text = _(
            "Welcome to ML Router! Your account #%(id)s is ready.\n\n"
            "ML Router is an OpenAI-compatible API for many language models, paid from a prepaid USD balance. "
            "Create a key with /keys, add funds with /topup and point any OpenAI SDK at ML Router."
        ) % {"id": account.pk}
    elif outcome.linked:
        text = _("This chat is now linked to account #%(id)s. Balance: %(balance)s.") % {
            "id": account.pk,
            "balance": usd_micro(account.balance),
        }
    else:
        text = _("Welcome back! Account #%(id)s, balance: %(balance)s.") % {
            "id": account.pk,
            "balance": usd_micro(account.balance),
        }
    telegram.send(sender.chat_id, f"{text}\n\n{_command_list()}")


def help_(sender: Sender, account: Account | None, args: str) -> None:
    """List the commands."""
    telegram.send(sender.chat_id, _("What I can do:") + "\n\n" + _command_list())


def paysupport(sender: Sender, account: Account | None, args: str) -> None:
    """Explain payments and where to ask about one (Telegram requires this command of paying bots)."""
    contact = BotSettings.load().support_contact
    text = _(
        "Payment support\n\n"
        "Top-ups are credited in USD to your ML Router balance as soon as Telegram confirms the payment; "
        "unused top-ups paid in Stars can be refunded."
    )
    who = escape(contact) if contact else _("ML Router support")
    if account is not None:
        ask = _("If a payment did not arrive or you want a refund, write to %(who)s with your account number #%(id)s.")
        text += "\n\n" + ask % {"who": who, "id": account.pk}
    else:
        text += "\n\n" + _("If a payment did not arrive or you want a refund, write to %(who)s.") % {"who": who}
    telegram.send(sender.chat_id, text)


def balance(sender: Sender, account: Account, args: str) -> None:
    """Show the balance, what is available now and the spend this month."""
    account.refresh_from_db(fields=["balance", "held"])
    text = _("Balance: %(balance)s\nAvailable now: %(available)s\nSpent this month: %(spent)s") % {
        "balance": usd_micro(account.balance),
        "available": usd_micro(account.available),
        "spent": usd_micro(spend_since(account, month_start())),
    }
    telegram.send(sender.chat_id, text + "\n\n" + _("Add funds with /topup."))


def _prices_view(page: int) -> tuple[str, list[list[tuple[str, str]]]]:
    view = price_page(page)
    if not view.rows:
        return _("No models are available right now."), []
    lines = [_("Prices in USD per 1M tokens, input / output:"), ""]
    for public_id, price in view.rows:
        line = f"{code(public_id)} — {usd_micro(price.prompt)} / {usd_micro(price.completion)}"
        if price.request:
            line += " + " + _("%(fee)s per request") % {"fee": usd_micro(price.request)}
        lines.append(line)
    buttons: list[tuple[str, str]] = []
    if view.pages > 1:
        lines += ["", _("Page %(page)s of %(pages)s") % {"page": view.page, "pages": view.pages}]
        if view.page > 1:
            buttons.append(("◀", f"prices:{view.page - 1}"))
        if view.page < view.pages:
            buttons.append(("▶", f"prices:{view.page + 1}"))
    return "\n".join(lines), [buttons]


def prices(sender: Sender, account: Account | None, args: str) -> None:
    """Show the first page of the price list."""
    text, buttons = _prices_view(1)
    telegram.send(sender.chat_id, text, buttons)


def prices_page(callback: Callback, account: Account | None, page: str) -> None:
    """Turn the price list to another page in place."""
    text, buttons = _prices_view(int(page) if page.isdigit() else 1)
    telegram.answer_callback(callback.query_id)
    if callback.message_id is None:
        telegram.send(callback.sender.chat_id, text, buttons)
    else:
        telegram.edit(callback.sender.chat_id, callback.message_id, text, buttons)


def _status_note(generation: Generation) -> str:
    notes = {
        Generation.Status.PENDING: _("in progress"),
        Generation.Status.CANCELLED: _("cancelled"),
        Generation.Status.FAILED: _("failed"),
    }
    note = notes.get(generation.status)
    return f" ({note})" if note else ""


def usage(sender: Sender, account: Account, args: str) -> None:
    """Show the latest generations with their cost."""
    generations = recent_generations(account)
    if not generations:
        telegram.send(sender.chat_id, _("No requests yet. Create a key with /keys and make your first call."))
        return
    lines = [_("Your latest requests:"), ""]
    for g in generations:
        tokens = _("%(prompt)s → %(completion)s tokens") % {
            "prompt": g.prompt_tokens,
            "completion": g.completion_tokens,
        }
        lines.append(
            f"{date_text(g.started_at)} · {code(g.model.public_id)} · {tokens} · {usd_micro(g.cost)}{_status_note(g)}"
        )
    telegram.send(sender.chat_id, "\n".join(lines))


def redeem(sender: Sender, account: Account, args: str) -> None:
    """Redeem a promo code."""
    if not args:
        telegram.send(sender.chat_id, _("Send the code like this: /redeem CODE"))
        return
    misses_key = f"bot:redeem-misses:{account.pk}"
    if (cache.get(misses_key) or 0) >= REDEEM_MISSES_PER_HOUR:
        telegram.send(sender.chat_id, _("Too many attempts. Try again in an hour."))
        return
    try:
        redemption = code_redeem(code=args.split()[0], account=account)
    except RedemptionRefused as refused:
        if refused.reason == RedemptionRefused.UNKNOWN:
            _count_miss(misses_key)
        messages = {
            RedemptionRefused.UNKNOWN: _("This code does not exist or is no longer active."),
            RedemptionRefused.EXPIRED: _("This code has expired."),
            RedemptionRefused.USED_UP: _("This code has been used up."),
            RedemptionRefused.ALREADY_REDEEMED: _("You have already redeemed this code."),
            RedemptionRefused.INVALID: _("This code cannot be redeemed. Please contact support."),
        }
        telegram.send(sender.chat_id, messages[refused.reason])
        return
    text = _("Code redeemed: %(amount)s added. Balance: %(balance)s.") % {
        "amount": usd_micro(redemption.ledger_entry.amount),
        "balance": usd_micro(redemption.ledger_entry.balance_after),
    }
    telegram.send(sender.chat_id, text)


def _count_miss(key: str) -> None:
    if not cache.add(key, 1, timeout=3600):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=3600)
