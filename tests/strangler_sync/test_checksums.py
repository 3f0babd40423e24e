"""Row hashes: the SQL path (PostgreSQL) and the Python path (any database) agree on awkward values."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import JSONField, Value

from monolith.catalog.models import Category, Product
from strangler_sync import checksums, verify
from strangler_sync.checksums import (
    ENCODERS,
    bucket_bounds,
    bucket_index,
    checksum_buckets,
    checksum_rows,
    jsonb_text,
    sql_token,
)
from strangler_sync.conf import sync_settings
from strangler_sync.verify import VerifyError, verify_aggregate
from tests.strangler_sync.conftest import ChecksumSession

pytestmark = pytest.mark.django_db

IST = timezone(timedelta(hours=5, minutes=30))

AWKWARD_JSON = [
    [],
    {},
    None,  # JSON null: Django reads it as None, like SQL NULL
    "just a string",
    ["https://x.test/a.png", "ünïcödé 日本 😀",
     "quote \" backslash \\ slash / tab \t nl \n ctl \u0001 del \x7f \u2028"],
    {"bb": 1, "a": {"é": 1, "z": 2, "yy": []}, "ccc": [True, False, None], "": "empty key"},
    [0.1, 1.5, 1.0, -0.0, 1e-07, 1e20, 2.5e-300, 12345678901234567890, -7, 0],
    [{"k": {"nested": {"deep": [1, [2, [3]]]}}}],
]


def _awkward_products() -> list[int]:
    category = Category.objects.create(id=1, name="Café", slug="cafe")  # fixed: sequences outlive rollbacks
    rows = [
        # name, description, price, active, images, category, created_at, updated_at
        ("Plain", "", Decimal("10.00"), True, [], None,
         datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("Ünïcödé 日本語 😀", "line 1\nline 2\t\"quoted\" \\ back", Decimal("10.50"), False, AWKWARD_JSON[4],
         category.id, datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=IST), datetime(2026, 3, 4, 5, 6, 7, 1, tzinfo=UTC)),
        ("", "", Decimal("0.00"), True, AWKWARD_JSON[5], None,
         datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)),
        ("Big", "x" * 5000, Decimal("9999999999.99"), True, AWKWARD_JSON[6], category.id,
         datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2000, 2, 29, 12, tzinfo=IST)),
        ("Dict", "~|:", Decimal("0.10"), False, AWKWARD_JSON[1], None,
         datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("Null JSON", "", Decimal("1.00"), True, None, None,
         datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("String JSON", "", Decimal("2.20"), True, AWKWARD_JSON[3], None,
         datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("Nested", "", Decimal("3.33"), True, AWKWARD_JSON[7], None,
         datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    ids = []
    for n, (name, description, price, active, images, category_id, created, updated) in enumerate(rows, start=1):
        product = Product.objects.create(
            id=100 + n, sku=f"AWK-{n}", slug=f"awk-{n}", name=name, description=description, price=price,
            is_active=active, images=[] if images is None else images, category_id=category_id,
        )
        # created_at/updated_at are auto fields: set the awkward instants after the insert; JSON null is a Value
        Product.objects.filter(pk=product.pk).update(
            created_at=created, updated_at=updated, **({"images": Value(None, JSONField())} if images is None else {})
        )
        ids.append(product.pk)
    return ids


# md5 of each awkward row's text, computed once by the Python path: every database and path must give these,
# which is what lets a source on SQLite and a follower on PostgreSQL compare equal
GOLDEN = {
    "101": "0898b9d723c500087a6a92e99b3ff3dd", "102": "c789509549b09395f17f7575f7eb3602",
    "103": "7409b819c32bae397f085bc5cb833a15", "104": "c5542da7f847c1baf5c996aac54cb5fe",
    "105": "9fa26b1303caf30e71b881c4e581e77b", "106": "432ed63cb5c13316effd898317d19aef",
    "107": "7bd8884e01a742a0b6aa5f6b858bfb57", "108": "c0f3019aef704980ec4df99645b58ff7",
}


def test_awkward_rows_hash_the_same_on_every_database_and_path():
    _awkward_products()
    config = sync_settings().aggregate("product")
    assert (checksums._sql_usable(config) is not None) == (connection.vendor == "postgresql")
    auto = checksum_rows(aggregate_type="product", start=1, end=1000)
    python = checksum_rows(aggregate_type="product", start=1, end=1000, engine="python")
    assert auto == python
    assert auto == GOLDEN
    for buckets in (1, 3, 7, 1000):
        assert checksum_buckets(aggregate_type="product", start=90, end=120, buckets=buckets) == checksum_buckets(
            aggregate_type="product", start=90, end=120, buckets=buckets, engine="python"
        )


def test_every_change_changes_the_row_hash():
    ids = _awkward_products()
    before = checksum_rows(aggregate_type="product", start=ids[0], end=ids[-1])
    changes = [
        {"price": Decimal("10.01")}, {"is_active": True}, {"name": "Ünïcödé 日本語 😀 "}, {"description": ""},
        {"images": list(reversed(AWKWARD_JSON[4]))}, {"category_id": None},
        {"created_at": datetime(2026, 3, 4, 5, 6, 7, 123457, tzinfo=IST)},
    ]
    for change in changes:
        Product.objects.filter(pk=ids[1]).update(**change)
        after = checksum_rows(aggregate_type="product", start=ids[0], end=ids[-1])
        assert after[str(ids[1])] != before[str(ids[1])], change
        assert {k: v for k, v in after.items() if k != str(ids[1])} == {
            k: v for k, v in before.items() if k != str(ids[1])
        }
        before = after
    # the same value written differently is the same state
    Product.objects.filter(pk=ids[4]).update(images={"a": 1}, price=Decimal("0.1"))
    first = checksum_rows(aggregate_type="product", start=ids[4], end=ids[4])
    Product.objects.filter(pk=ids[4]).update(images=json.loads('{"a":1}'), price=Decimal("0.10"))
    assert checksum_rows(aggregate_type="product", start=ids[4], end=ids[4]) == first


def test_bucket_index_matches_bucket_bounds():
    for start, end, n in [(1, 1000, 7), (5, 5, 3), (1, 10, 100), (-3, 1003, 256), (7, 100_006, 256)]:
        bounds = bucket_bounds(start=start, end=end, buckets=n)
        span = end - start + 1
        for index, (lo, hi) in enumerate(bounds):
            for row_id in {lo, hi, (lo + hi) // 2}:
                assert bucket_index(row_id=row_id, start=start, span=span, buckets=len(bounds)) == index


def test_bucket_checksums_find_changed_missing_and_extra_rows_in_their_bucket():
    for i in range(1, 61):
        if i != 45:
            Product.objects.create(id=i, sku=f"S-{i}", slug=f"s-{i}", name=f"P {i}", price=Decimal(i))
    before = checksum_buckets(aggregate_type="product", start=1, end=60, buckets=6)
    assert [b["count"] for b in before] == [10, 10, 10, 10, 9, 10]
    Product.objects.filter(pk=15).update(name="changed")
    Product.objects.filter(pk=35).delete()
    Product.objects.create(id=45, sku="S-45", slug="s-45", name="P 45", price=Decimal(45))
    Product.objects.filter(pk=55).update(price=Decimal("55.000"))  # the same value: no change
    after = checksum_buckets(aggregate_type="product", start=1, end=60, buckets=6)
    differing = [i for i in range(6) if (before[i]["checksum"], before[i]["count"]) != (after[i]["checksum"],
                                                                                     after[i]["count"])]
    assert differing == [1, 3, 4]
    assert [b["count"] for b in after] == [10, 10, 10, 9, 10, 10]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("kind", "sql_type", "values"),
    [
        ("i", "bigint", [0, -5, 2**63 - 1, -(2**63)]),
        ("s", "text", ["", "é", "日本", "😀", "a\nb", "~|:", "x" * 300]),
        ("s", "uuid", [uuid.UUID(int=0), uuid.UUID("12345678-9abc-def0-1234-56789abcdef0"), uuid.uuid4()]),
        ("b", "boolean", [True, False]),
        ("n", "numeric", [Decimal(x) for x in ("10.50", "0.00", "-0.00", "-1.50", "100", "1E+2", "0.0000001000",
                                               "1234567890123456789012345678901.50", "NaN")]),
        ("t", "timestamptz", [datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=IST), datetime(1, 1, 1, tzinfo=UTC),
                              datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                              datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]),
        ("t", "timestamp", [datetime(2026, 3, 4, 5, 6, 7, 123456), datetime(1969, 12, 31, 23, 59, 59, 1)]),
        ("d", "date", [date(1970, 1, 1), date(1969, 12, 31), date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29)]),
        ("j", "jsonb", AWKWARD_JSON),
    ],
)
def test_sql_tokens_equal_the_python_encoders(kind, sql_type, values):
    with connection.cursor() as cursor:
        for value in [*values, None]:
            param = json.dumps(value) if sql_type == "jsonb" else value
            cursor.execute(f"SELECT {sql_token(kind=kind, column='v')} FROM (SELECT CAST(%s AS {sql_type}) AS v) t",
                           [param])
            in_sql = cursor.fetchone()[0]
            read = json.loads(param) if sql_type == "jsonb" else value  # what Django hands the Python path
            assert in_sql == ("~" if read is None else ENCODERS[kind](read)), (sql_type, value)
            if sql_type == "jsonb" and value is not None:
                cursor.execute("SELECT CAST(%s AS jsonb)::text", [param])
                assert cursor.fetchone()[0] == jsonb_text(read)


def test_jsonb_text_orders_keys_as_postgresql_does():
    assert jsonb_text({"bb": 1, "a": {"é": 1, "z": 2, "yy": []}}) == '{"a": {"z": 2, "yy": [], "é": 1}, "bb": 1}'
    assert jsonb_text([1e-07, 1e20, -0.0, 1.0]) == "[0.0000001, 100000000000000000000, 0.0, 1.0]"


def test_verify_refuses_sides_hashing_in_different_formats(monkeypatch):
    # one side after the other in this thread: the test's rows are only visible to its own connection
    monkeypatch.setattr(verify, "_both", lambda src, fol, **params: (src.get(**params), fol.get(**params)))
    for i in range(1, 4):
        Product.objects.create(sku=f"F-{i}", slug=f"f-{i}", name=f"F {i}", price=Decimal(i))
    same = verify_aggregate(source="http://source", follower="http://follower", aggregate="product",
                            session=ChecksumSession())
    assert same.differences == 0 and same.source_count == 3

    def older_peer(data):
        data.pop("hash", None)
        return data

    with pytest.raises(VerifyError, match="hash rows differently"):
        verify_aggregate(source="http://source", follower="http://follower", aggregate="product",
                         session=ChecksumSession(older_peer))


def test_the_python_path_can_be_chosen_by_setting(settings):
    from django.test.utils import CaptureQueriesContext

    _awkward_products()
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "CHECKSUM_ENGINE": "python"}
    with CaptureQueriesContext(connection) as queries:
        assert checksum_rows(aggregate_type="product", start=1, end=1000) == GOLDEN
    assert not any("md5(" in query["sql"] for query in queries.captured_queries)
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "CHECKSUM_ENGINE": "fast"}
    with pytest.raises(ValueError, match="unknown checksum engine"):
        checksum_buckets(aggregate_type="product", start=1, end=10, buckets=2)


def test_timestamps_without_use_tz_are_hashed_in_python(settings):
    settings.USE_TZ = False
    assert checksums._sql_usable(sync_settings().aggregate("product")) is None
    assert checksums._sql_usable(sync_settings().aggregate("stock")) == (
        "default" if connection.vendor == "postgresql" else None)  # no timestamps: SQL where it can
