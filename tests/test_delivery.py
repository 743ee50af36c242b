"""Delivery signals: status, meta date or flag, shipment tracking; the earliest wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcfollowup.config import DeliveryConfig, TrackingConfig
from wcfollowup.core.delivery import (
    assumed_delivered_at,
    delivered_at,
    delivery_fields,
    delivery_statuses,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
MODIFIED = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
ORDER: dict[str, Any] = {
    "status": "completed",
    "date_modified_gmt": "2026-11-25T03:00:00",
    "date_completed_gmt": "2026-11-22T03:00:00",
    "meta_data": [],
}
EVERYTHING = DeliveryConfig(
    status="delivered",
    meta_key="_delivered_at",
    tracking=TrackingConfig(transit=timedelta(days=2)),
    assume_after=timedelta(days=7),
)


def order(**changes: Any) -> dict[str, Any]:
    return {**ORDER, **changes}


def meta(key: str, value: object) -> list[dict[str, object]]:
    return [{"id": 1, "key": "other", "value": "x"}, {"id": 2, "key": key, "value": value}]


def test_custom_status_means_delivered_when_modified() -> None:
    config = DeliveryConfig(status="delivered")
    assert delivered_at(order(status="delivered"), config, JAKARTA) == MODIFIED
    assert delivered_at(order(status="wc-delivered"), config, JAKARTA) == MODIFIED
    assert delivered_at(order(), config, JAKARTA) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24 14:30", datetime(2026, 11, 24, 7, 30, tzinfo=UTC)),  # store-local
        ("2026-11-24T14:30:00+08:00", datetime(2026, 11, 24, 6, 30, tzinfo=UTC)),
        ("2026-11-24", datetime(2026, 11, 23, 17, 0, tzinfo=UTC)),
        ("1763969400", datetime(2025, 11, 24, 7, 30, tzinfo=UTC)),
        (1763969400, datetime(2025, 11, 24, 7, 30, tzinfo=UTC)),
        ("1763969400000", datetime(2025, 11, 24, 7, 30, tzinfo=UTC)),
        ("yes", MODIFIED),
        ("1", MODIFIED),
        (True, MODIFIED),
        ("no", None),
        ("0", None),
        ("", None),
        (None, None),
        ("someday", None),
        ({"nested": 1}, None),
    ],
)
def test_meta_dates_and_flags(value: object, expected: datetime | None) -> None:
    config = DeliveryConfig(meta_key="_delivered_at")
    assert delivered_at(order(meta_data=meta("_delivered_at", value)), config, JAKARTA) == expected


def test_tracking_uses_the_latest_shipment_plus_transit() -> None:
    config = DeliveryConfig(tracking=TrackingConfig(transit=timedelta(days=3)))
    items = [
        {"tracking_provider": "jne", "tracking_number": "1", "date_shipped": "1731283200"},
        {"tracking_provider": "jnt", "tracking_number": "2", "date_shipped": "1731369600"},
        {"tracking_number": "3"},
    ]
    found = delivered_at(
        order(meta_data=meta("_wc_shipment_tracking_items", items)), config, JAKARTA
    )
    assert found == datetime.fromtimestamp(1731369600, UTC) + timedelta(days=3)
    assert (
        delivered_at(order(meta_data=meta("_wc_shipment_tracking_items", [])), config, JAKARTA)
        is None
    )


def test_the_earliest_signal_wins_and_assume_after_is_only_a_fallback() -> None:
    shipped = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    data = order(
        status="delivered",
        meta_data=[
            {"key": "_delivered_at", "value": "2026-11-24 08:00"},
            {
                "key": "_wc_shipment_tracking_items",
                "value": [{"date_shipped": str(int(shipped.timestamp()))}],
            },
        ],
    )
    assert delivered_at(data, EVERYTHING, JAKARTA) == shipped + timedelta(days=2)
    assert delivered_at(order(), EVERYTHING, JAKARTA) is None
    assert assumed_delivered_at(order(), EVERYTHING) == datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert assumed_delivered_at(order(), DeliveryConfig(status="delivered")) is None


def test_fields_and_statuses_for_the_poll() -> None:
    assert delivery_fields(None) == frozenset()
    assert delivery_fields(DeliveryConfig(status="delivered")) == {"status", "date_modified_gmt"}
    assert delivery_fields(EVERYTHING) == {
        "status",
        "meta_data",
        "date_modified_gmt",
        "date_completed_gmt",
    }
    assert delivery_statuses(EVERYTHING) == {"delivered"}
    assert delivery_statuses(DeliveryConfig(assume_after=timedelta(days=1))) == frozenset()
    assert delivery_statuses(None) == frozenset()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["key", "value", "date_shipped", "x"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["status", "date_modified_gmt", "date_completed_gmt", "meta_data"]),
        json_values,
    )
)
def test_broken_orders_never_raise(data: dict[str, Any]) -> None:
    found = delivered_at(data, EVERYTHING, JAKARTA)
    assert found is None or found.tzinfo is not None
    assumed_delivered_at(data, EVERYTHING)


def test_dates_at_the_edge_of_time_do_not_overflow() -> None:
    data = order(
        date_completed_gmt="9999-12-31T23:00:00",
        meta_data=[
            {
                "key": "_wc_shipment_tracking_items",
                "value": [{"date_shipped": "9999-12-31T00:00:00"}],
            },
            {"key": "_delivered_at", "value": "0001-01-01T00:00:00+05:00"},
        ],
    )
    assert delivered_at(data, EVERYTHING, JAKARTA) is None
    assert assumed_delivered_at(data, EVERYTHING) is None
