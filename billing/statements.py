"""The money path's SQL statements: place a hold, settle it (or many). PostgreSQL only; the ORM does it elsewhere.

Each is one statement and so one round trip: the conditional balance UPDATE, the hold, the ledger entry
and the caller's own row (`RowInsert` / `RowUpdate`) change together or not at all. Table and column
names come from the models' `_meta`, statuses and kinds from their enums; every value is a bound
parameter, except the constant defaults of the fields a caller's row leaves out, which the text spells
(`0::numeric`, `''::text`). The texts are built once per shape and reused, so that PostgreSQL prepares
them (`core.db.fetch_one`). The ORM path in `billing/services.py` does the same writes, and one property
test proves the two leave equal rows (`tests/billing/test_money_paths.py`). `settle_many_sql` is
`settle_sql` for a batch of charges (group commit, `core/group_commit.py`), proven to leave the same
rows as settling them one by one (`tests/billing/test_charge_batches.py`); `place_many_sql` is
`place_sql` for a batch of holds, proven to place and refuse what placing them one by one does
(`tests/billing/test_hold_batches.py`).
"""

from __future__ import annotations

import datetime
import enum
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection, models

from accounts.models import Account

from .models import Hold, LedgerEntry


@dataclass(frozen=True)
class RowInsert:
    """A row of the caller's own table inserted together with a hold being placed (only if it is placed).

    `values` by attribute name (`account_id`, not `account`); a missing field takes its default.
    """

    model: type[models.Model]
    values: dict[str, Any]


@dataclass(frozen=True)
class RowUpdate:
    """A row of the caller's own table updated together with a hold being settled (only if it is settled).

    `charge_field` (when set) receives the amount charged, a positive number.
    """

    model: type[models.Model]
    pk: Any
    values: dict[str, Any]
    charge_field: str | None = None


def _table(model: type[models.Model]) -> str:
    return f'"{model._meta.db_table}"'


def _col(model: type[models.Model], name: str) -> str:
    return f'"{model._meta.get_field(name).column}"'


_WORD = re.compile(r"[a-z_]+")


def _literal(value: str) -> str:
    # Only the models' own enum values are written into a statement (a partial index on a status can
    # then serve it); anything else is a bound parameter.
    if not _WORD.fullmatch(value):
        raise ValueError(f"not an enum value: {value!r}")
    return f"'{value}'"


def _fields(model: type[models.Model]) -> dict[str, models.Field]:
    return {f.attname: f for f in model._meta.concrete_fields}


_SAFE_TEXT = re.compile(r"[\w .,:/@+-]*", re.ASCII)


def _constant(field: models.Field) -> str | None:
    """A field's default as a typed SQL constant, or None when it must be a parameter.

    Only constants Django would write unchanged qualify; a callable default (`timezone.now`) is worked
    out per row, so it stays a parameter, as does any default whose type has no plain spelling here.
    """
    if field.has_db_default() or (field.has_default() and callable(field.default)):
        return None
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return None
    value = field.get_default()
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return f"{value:f}::numeric"
    if isinstance(value, str) and _SAFE_TEXT.fullmatch(value):
        return f"'{value}'::text"
    return None


@functools.lru_cache(maxsize=32)
def _insert_plan(
    model: type[models.Model], given: tuple[str, ...], source: str = "h"
) -> tuple[str, tuple[models.Field, ...]]:
    """`INSERT … SELECT … FROM h`: one row of `model`, written only when the hold `h` was placed.

    The `given` fields are parameters, and so is a default worked out per row (returned with the
    text); every other field's default is a constant in the text, which PostgreSQL then neither
    receives nor parses per request. With another `source` (a batch's placed holds joined to their
    items `r`), each parameter is instead the item's column `r."x_…"`.
    """
    names, values, per_row = [], [], []
    for name, field in _fields(model).items():
        names.append(f'"{field.column}"')
        constant = None if name in given else _constant(field)
        if constant is None:
            values.append(f"%(x_{field.column})s" if source == "h" else f'r."x_{field.column}"')
            if name not in given:
                per_row.append(field)
        else:
            values.append(constant)
    sql = f"INSERT INTO {_table(model)} ({', '.join(names)}) SELECT {', '.join(values)} FROM {source}"  # noqa: S608
    return sql, tuple(per_row)


def _insert_params(row: RowInsert) -> dict[str, Any]:
    fields = _fields(row.model)
    params = {f"x_{fields[name].column}": value for name, value in row.values.items()}
    for field in _insert_plan(row.model, tuple(row.values))[1]:
        params[f"x_{field.column}"] = field.get_default()
    return params


@functools.lru_cache(maxsize=32)
def _update_sql(model: type[models.Model], names: tuple[str, ...], charge_field: str | None) -> str:
    """`UPDATE … FROM e`: one row of `model`, changed only when the charge `e` was written."""
    fields = _fields(model)
    sets = [f'"{fields[name].column}" = %(x_{fields[name].column})s' for name in names]
    if charge_field:
        sets.append(f"{_col(model, charge_field)} = -e.amount")
    table, pk = _table(model), f'"{model._meta.pk.column}"'
    return f"UPDATE {table} SET {', '.join(sets)} FROM e WHERE {table}.{pk} = %(x__pk)s"  # noqa: S608


def _update_params(row: RowUpdate) -> dict[str, Any]:
    fields = _fields(row.model)
    params = {f"x_{fields[name].column}": value for name, value in row.values.items()}
    params["x__pk"] = row.pk
    return params


# A hold is a reservation, not money: when the statement is its own transaction it commits without
# waiting for the WAL flush (`set_config(..., true)` lasts until that commit). A crash of the database
# server can then lose the last moment's holds with their generations, and the requests in flight go
# uncharged; no charge is ever lost or doubled, since a charge commits durably, flushing in WAL order
# the hold it settles.
_UNFLUSHED = "\n        AND set_config('synchronous_commit', 'off', true) = 'off'"


@functools.lru_cache(maxsize=32)
def place_sql(*, unflushed: bool, also: tuple[type[models.Model], tuple[str, ...]] | None) -> str:
    """Reserve `_amount` on an active account whose available balance covers `_needed`, and open its hold."""
    a, h = Account, Hold
    also_cte = f", also AS ({_insert_plan(*also)[0]})" if also else ""
    return f"""
WITH a AS (
    UPDATE {_table(a)} SET {_col(a, "held")} = {_col(a, "held")} + %(_amount)s
    WHERE {_col(a, "id")} = %(_account)s AND {_col(a, "status")} = {_literal(Account.Status.ACTIVE)}
        AND {_col(a, "balance")} >= {_col(a, "held")} + %(_needed)s{_UNFLUSHED if unflushed else ""}
    RETURNING {_col(a, "id")} AS id, {_col(a, "balance")} - {_col(a, "held")} AS available
), h AS (
    INSERT INTO {_table(h)} ({_col(h, "account")}, {_col(h, "amount")}, {_col(h, "reference")}, {_col(h, "status")},
        {_col(h, "created_at")}, {_col(h, "expires_at")}, {_col(h, "close_reason")})
    SELECT id, %(_amount)s, %(_reference)s, {_literal(Hold.Status.OPEN)}, %(_now)s, %(_expires)s, '' FROM a
    RETURNING {_col(h, "id")} AS id, {_col(h, "account")} AS account_id
){also_cte}
SELECT h.id, a.available FROM h, a
"""  # noqa: S608 (identifiers from _meta, values bound)


def place_also_shape(also: RowInsert | None) -> tuple[type[models.Model], tuple[str, ...]] | None:
    """The part of `also` that shapes the statement's text: its model and the fields it gives."""
    return None if also is None else (also.model, tuple(also.values))


def place_params(
    *, amount: Any, account_id: int, needed: Any, reference: str, now: Any, expires: Any, also: RowInsert | None
) -> dict[str, Any]:
    params = {
        "_amount": amount,
        "_account": account_id,
        "_needed": needed,
        "_reference": reference,
        "_now": now,
        "_expires": expires,
    }
    if also is not None:
        params.update(_insert_params(also))
    return params


@functools.cache
def account_state_sql() -> str:
    """An account's status and available balance (why a hold was refused)."""
    a = Account
    return f"""SELECT {_col(a, "status")}, {_col(a, "balance")} - {_col(a, "held")} FROM {_table(a)}
WHERE {_col(a, "id")} = %(_account)s"""  # noqa: S608 (identifiers from _meta, values bound)


@functools.lru_cache(maxsize=32)
def settle_sql(*, also: tuple[type[models.Model], tuple[str, ...], str | None] | None) -> str:
    """Charge `_cost` (at most the hold), close the open hold `_reference`, and write the charge entry."""
    a, h, e = Account, Hold, LedgerEntry
    also_cte = f", also AS ({_update_sql(*also)})" if also else ""
    return f"""
WITH h AS (
    SELECT {_col(h, "id")} AS id, {_col(h, "account")} AS account_id, {_col(h, "amount")} AS amount
    FROM {_table(h)}
    WHERE {_col(h, "reference")} = %(_reference)s AND {_col(h, "status")} = {_literal(Hold.Status.OPEN)} FOR UPDATE
), a AS (
    UPDATE {_table(a)} acc
    SET {_col(a, "balance")} = acc.{_col(a, "balance")} - LEAST(%(_cost)s, h.amount),
        {_col(a, "held")} = acc.{_col(a, "held")} - h.amount
    FROM h WHERE acc.{_col(a, "id")} = h.account_id
    RETURNING acc.{_col(a, "id")} AS id, acc.{_col(a, "balance")} AS balance, acc.{_col(a, "held")} AS held,
        acc.{_col(a, "low_balance_threshold")} AS threshold, LEAST(%(_cost)s, h.amount) AS charge
), e AS (
    INSERT INTO {_table(e)} ({_col(e, "account")}, {_col(e, "kind")}, {_col(e, "amount")}, {_col(e, "balance_after")},
        {_col(e, "reference")}, {_col(e, "idempotency_key")}, {_col(e, "memo")}, {_col(e, "created_at")})
    SELECT id, {_literal(LedgerEntry.Kind.CHARGE)}, -charge, balance, %(_reference)s, %(_key)s, %(_memo)s, %(_now)s
    FROM a
    RETURNING {_col(e, "id")} AS id, {_col(e, "amount")} AS amount
), closed AS (
    UPDATE {_table(h)} SET {_col(h, "status")} = {_literal(Hold.Status.SETTLED)}, {_col(h, "closed_at")} = %(_now)s,
        {_col(h, "close_reason")} = %(_reason)s, {_col(h, "ledger_entry")} = e.id
    FROM e, h WHERE {_table(h)}.{_col(h, "id")} = h.id
){also_cte}
SELECT e.id, e.amount, a.id, a.balance, a.held, a.threshold FROM e, a
"""  # noqa: S608 (identifiers from _meta, values bound)


def settle_also_shape(also: RowUpdate | None) -> tuple[type[models.Model], tuple[str, ...], str | None] | None:
    """The part of `also` that shapes the statement's text (its values are parameters)."""
    return None if also is None else (also.model, tuple(also.values), also.charge_field)


def settle_params(
    *, reference: str, cost: Any, key: str, memo: str, now: Any, reason: str, also: RowUpdate | None
) -> dict[str, Any]:
    params = {"_reference": reference, "_cost": cost, "_key": key, "_memo": memo, "_now": now, "_reason": reason}
    if also is not None:
        params.update(_update_params(also))
    return params


@dataclass(frozen=True)
class Charge:
    """One charge of a batch: the arguments of `settle_params`."""

    reference: str
    cost: Decimal
    key: str
    memo: str
    now: datetime.datetime
    reason: str
    also: RowUpdate | None = None


@functools.lru_cache(maxsize=32)
def settle_many_sql(*, also: tuple[type[models.Model], tuple[str, ...], str | None] | None) -> str:
    """`settle_sql` for a batch: each charge of `_charges` (a JSON array, `settle_many_params`) as if alone.

    It locks the holds in id order, then their accounts in id order, so that batches and single
    settlements never wait on each other in a cycle. The holds are found by reference alone and checked
    for `open` once locked: the partial index on open holds, bloated by their churn, would be a slow way
    to a few of them. A reference twice in a batch is settled by its first charge only. Each account is
    updated once by the sum of its charges; each entry's `balance_after` is the balance after the charges
    before it in the batch (and in entry id order). A charge whose hold is not open returns no row, as
    `settle_sql` does. The rows: `i` (the charge's index), the entry's id and amount, the account's id,
    the entry's `balance_after`, then the account's balance, held and threshold after the whole batch.
    """
    a, h, e = Account, Hold, LedgerEntry
    columns, also_cte = "", ""
    if also:
        model, names, charge_field = also
        fields, pk = _fields(model), model._meta.pk
        columns = "".join(f', "x_{fields[n].column}" {fields[n].cast_db_type(connection)}' for n in names)
        columns += f", x__pk {pk.cast_db_type(connection)}"
        sets = [f'"{fields[n].column}" = r."x_{fields[n].column}"' for n in names]
        if charge_field:
            sets.append(f"{_col(model, charge_field)} = -e.amount")
        table = _table(model)
        also_cte = f""",
also AS (
    UPDATE {table} SET {", ".join(sets)}
    FROM e JOIN r ON r.reference = e.reference WHERE {table}."{pk.column}" = r.x__pk
)"""  # noqa: S608 (identifiers from _meta)
    return f"""
WITH x AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(_charges)s::jsonb)
        AS x(i integer, reference text, cost numeric, key text, memo text, now timestamptz, reason text{columns})
), h AS MATERIALIZED (
    SELECT {_col(h, "id")} AS id, {_col(h, "account")} AS account_id, {_col(h, "amount")} AS amount,
        {_col(h, "reference")} AS reference, {_col(h, "status")} AS status
    FROM {_table(h)}
    WHERE {_col(h, "reference")} = ANY(ARRAY(SELECT reference FROM x))
    ORDER BY {_col(h, "id")} FOR UPDATE
), c AS MATERIALIZED (
    SELECT DISTINCT ON (h.id) h.id AS hold_id, h.account_id, h.amount AS hold_amount,
        LEAST(x.cost, h.amount) AS charge, x.*
    FROM h JOIN x ON x.reference = h.reference
    WHERE h.status = {_literal(Hold.Status.OPEN)}
    ORDER BY h.id, x.i
), locked AS MATERIALIZED (
    SELECT {_col(a, "id")} AS id FROM {_table(a)} WHERE {_col(a, "id")} IN (SELECT account_id FROM c)
    ORDER BY {_col(a, "id")} FOR UPDATE
), t AS (
    SELECT account_id, SUM(charge) AS charged, SUM(hold_amount) AS released FROM c GROUP BY account_id
), a AS (
    UPDATE {_table(a)} acc
    SET {_col(a, "balance")} = acc.{_col(a, "balance")} - t.charged,
        {_col(a, "held")} = acc.{_col(a, "held")} - t.released
    FROM t JOIN locked ON locked.id = t.account_id WHERE acc.{_col(a, "id")} = locked.id
    RETURNING acc.{_col(a, "id")} AS id, acc.{_col(a, "balance")} AS balance, acc.{_col(a, "held")} AS held,
        acc.{_col(a, "low_balance_threshold")} AS threshold, t.charged
), r AS MATERIALIZED (
    SELECT c.*, a.balance + a.charged - SUM(c.charge) OVER (PARTITION BY c.account_id ORDER BY c.i) AS balance_after,
        a.balance, a.held, a.threshold
    FROM c JOIN a ON a.id = c.account_id
), e AS (
    INSERT INTO {_table(e)} ({_col(e, "account")}, {_col(e, "kind")}, {_col(e, "amount")}, {_col(e, "balance_after")},
        {_col(e, "reference")}, {_col(e, "idempotency_key")}, {_col(e, "memo")}, {_col(e, "created_at")})
    SELECT account_id, {_literal(LedgerEntry.Kind.CHARGE)}, -charge, balance_after, reference, key, memo, now
    FROM r ORDER BY i
    RETURNING {_col(e, "id")} AS id, {_col(e, "amount")} AS amount, {_col(e, "reference")} AS reference
), closed AS (
    UPDATE {_table(h)} SET {_col(h, "status")} = {_literal(Hold.Status.SETTLED)}, {_col(h, "closed_at")} = r.now,
        {_col(h, "close_reason")} = r.reason, {_col(h, "ledger_entry")} = e.id
    FROM e JOIN r ON r.reference = e.reference WHERE {_table(h)}.{_col(h, "id")} = r.hold_id
){also_cte}
SELECT r.i, e.id, e.amount, r.account_id, r.balance_after, r.balance, r.held, r.threshold
FROM e JOIN r ON r.reference = e.reference ORDER BY r.i
"""  # noqa: S608 (identifiers from _meta, values bound)


def _batch_json(items: list[dict[str, Any]]) -> str:
    """A batch's items as one JSON text: written by orjson (~2.5 µs an item, json ~12.5), json where orjson
    refuses a value (an integer wider than 64 bits, say), the same text either way for what PostgreSQL reads.
    Dates and times go through `_json_value` as with json (orjson's own writer drops an offset's seconds)."""
    try:
        return orjson.dumps(items, default=_json_value, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except orjson.JSONEncodeError:
        return json.dumps(items, default=_json_value, separators=(",", ":"))


def _json_value(value: Any) -> Any:
    # Exact: a Decimal travels as its text, a datetime with its offset; PostgreSQL parses both.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} in a batch")


def settle_many_params(charges: Sequence[Charge]) -> dict[str, Any]:
    """The one parameter of `settle_many_sql`: the charges (all of one `settle_also_shape`) as JSON."""
    items = []
    for i, charge in enumerate(charges):
        item = {
            "i": i,
            "reference": charge.reference,
            "cost": charge.cost,
            "key": charge.key,
            "memo": charge.memo,
            "now": charge.now,
            "reason": charge.reason,
        }
        if charge.also is not None:
            item.update(_update_params(charge.also))
        items.append(item)
    return {"_charges": _batch_json(items)}


@dataclass(frozen=True)
class Placement:
    """One hold of a batch: the arguments of `place_params`."""

    account_id: int
    amount: Decimal
    needed: Decimal
    reference: str
    now: datetime.datetime
    expires: datetime.datetime
    also: RowInsert | None = None


@functools.lru_cache(maxsize=32)
def place_many_sql(*, unflushed: bool, also: tuple[type[models.Model], tuple[str, ...]] | None) -> str:
    """`place_sql` for a batch: each hold of `_holds` (a JSON array, `place_many_params`) as if placed alone, in order.

    It locks the batch's accounts in id order (as `settle_many_sql` does, after its holds), so that
    batches of holds and of charges never wait on each other in a cycle. Per account, the holds are
    checked in the batch's order against the balance less what is held, counting the holds placed
    before them in the batch (`run`, recursive): a hold refused takes nothing, and the next one is
    checked as if it had not been asked for. The account is updated once by the sum of the holds placed;
    the placed holds (and the caller's rows) are inserted in the batch's order; `unflushed` as for
    `place_sql`. The rows, one per hold in order: `i`, the hold's id (NULL when refused), the account's
    status (NULL when there is no such account), and its available balance right after the hold (when
    refused: what it could not cover). The accounts are found by an array of their ids: prepared, the
    statement is soon planned once for any batch (a generic plan) expecting a hundred items of a JSON it
    cannot see, and joined to those PostgreSQL would read every account, twice per batch.
    """
    a, h = Account, Hold
    columns, also_cte = "", ""
    if also:
        model, names = also
        sql, per_row = _insert_plan(model, names, "h JOIN r ON r.placed AND r.reference = h.reference")
        fields = {field.attname: field for field in _fields(model).values()}
        sent = [fields[n] for n in names] + list(per_row)
        columns = "".join(f', "x_{f.column}" {f.cast_db_type(connection)}' for f in sent)
        also_cte = f",\nalso AS ({sql})"
    money = a._meta.get_field("held").cast_db_type(connection)
    active = _literal(Account.Status.ACTIVE)
    unflushed_where = "\nWHERE set_config('synchronous_commit', 'off', true) = 'off'" if unflushed else ""
    return f"""
WITH RECURSIVE x AS MATERIALIZED (
    SELECT *, row_number() OVER (PARTITION BY account ORDER BY i) AS k
    FROM jsonb_to_recordset(%(_holds)s::jsonb) AS x(i integer, account bigint, amount {money}, needed {money},
        reference text, now timestamptz, expires timestamptz{columns})
), locked AS MATERIALIZED (
    SELECT {_col(a, "id")} AS id, {_col(a, "status")} AS status, {_col(a, "balance")} AS balance,
        {_col(a, "held")} AS held
    FROM {_table(a)} WHERE {_col(a, "id")} = ANY(ARRAY(SELECT account FROM x))
    ORDER BY {_col(a, "id")} FOR UPDATE
), run AS (
    SELECT x.i, x.account, x.k, p.placed, locked.held + CASE WHEN p.placed THEN x.amount ELSE 0 END AS held
    FROM x JOIN locked ON locked.id = x.account,
        LATERAL (SELECT locked.status = {active} AND locked.balance >= locked.held + x.needed AS placed) p
    WHERE x.k = 1
  UNION ALL
    SELECT x.i, x.account, x.k, p.placed, run.held + CASE WHEN p.placed THEN x.amount ELSE 0 END
    FROM run JOIN x ON x.account = run.account AND x.k = run.k + 1 JOIN locked ON locked.id = x.account,
        LATERAL (SELECT locked.status = {active} AND locked.balance >= run.held + x.needed AS placed) p
), r AS MATERIALIZED (
    SELECT x.*, coalesce(run.placed, false) AS placed, locked.status, locked.balance - run.held AS available
    FROM x LEFT JOIN run ON run.i = x.i LEFT JOIN locked ON locked.id = x.account
), a AS (
    UPDATE {_table(a)} acc SET {_col(a, "held")} = acc.{_col(a, "held")} + t.amount
    FROM (SELECT account, SUM(amount) AS amount FROM r WHERE placed GROUP BY account) t
    WHERE acc.{_col(a, "id")} = t.account AND acc.{_col(a, "id")} = ANY(ARRAY(SELECT account FROM r WHERE placed))
), h AS (
    INSERT INTO {_table(h)} ({_col(h, "account")}, {_col(h, "amount")}, {_col(h, "reference")}, {_col(h, "status")},
        {_col(h, "created_at")}, {_col(h, "expires_at")}, {_col(h, "close_reason")})
    SELECT account, amount, reference, {_literal(Hold.Status.OPEN)}, now, expires, '' FROM r WHERE placed ORDER BY i
    RETURNING {_col(h, "id")} AS id, {_col(h, "reference")} AS reference
){also_cte}
SELECT r.i, h.id, r.status, r.available
FROM r LEFT JOIN h ON r.placed AND h.reference = r.reference{unflushed_where}
ORDER BY r.i
"""  # noqa: S608 (identifiers from _meta, values bound)


def place_many_params(holds: Sequence[Placement]) -> dict[str, Any]:
    """The one parameter of `place_many_sql`: the holds (all of one `place_also_shape`) as JSON."""
    items = []
    for i, hold in enumerate(holds):
        item = {
            "i": i,
            "account": hold.account_id,
            "amount": hold.amount,
            "needed": hold.needed,
            "reference": hold.reference,
            "now": hold.now,
            "expires": hold.expires,
        }
        if hold.also is not None:
            item.update(_insert_params(hold.also))
        items.append(item)
    return {"_holds": _batch_json(items)}
