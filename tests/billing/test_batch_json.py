"""A batch's items as JSON (`billing.statements._batch_json`): the text json wrote, read the same by PostgreSQL."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.statements import _batch_json, _json_value

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(),
)
items = st.lists(st.dictionaries(st.text(max_size=8), values, max_size=6), max_size=5)


@given(items)
def test_it_reads_back_as_what_json_wrote(batch):
    assert json.loads(_batch_json(batch)) == json.loads(json.dumps(batch, default=_json_value))


def test_amounts_travel_as_their_exact_text_and_times_with_their_offset():
    at = datetime.datetime(2026, 12, 3, 16, 0, tzinfo=datetime.UTC)
    text = _batch_json([{"cost": Decimal("0.0000066000"), "now": at, "memo": "Привет"}])
    assert json.loads(text) == [{"cost": "0.0000066000", "now": "2026-12-03T16:00:00+00:00", "memo": "Привет"}]
