"""Retention, cohorts and the other reports on the hand-checked history (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

from hub.analytics import retention
from hub.analytics.retention import CohortRow, RetentionRow, Window
from hub.runtime import Runtime
from hub.store.models import Complaint
from tests.integration.analytics.history import at, load


async def test_monthly_retention_is_exact(runtime: Runtime) -> None:
    await load(runtime)
    async with runtime.factory() as session:
        rows = await retention.retention(session, "month")
    assert rows == [
        RetentionRow("2025-01", 3, 0, 0, None),
        RetentionRow("2025-02", 2, 3, 1, 0.3333),
        RetentionRow("2025-03", 4, 2, 2, 1.0),
        RetentionRow("2025-04", 1, 4, 0, 0.0),
    ]


async def test_quarterly_and_yearly_retention(runtime: Runtime) -> None:
    await load(runtime)
    async with runtime.factory() as session:
        quarters = await retention.retention(session, "quarter")
        years = await retention.retention(session, "year")
    assert quarters == [RetentionRow("2025-Q1", 5, 0, 0, None), RetentionRow("2025-Q2", 1, 5, 1, 0.2)]
    assert years == [RetentionRow("2025", 5, 0, 0, None)]


async def test_cohort_table_is_exact(runtime: Runtime) -> None:
    await load(runtime)
    async with runtime.factory() as session:
        rows = await retention.cohorts(session, "month")
    assert rows == [
        CohortRow("2025-01", 3, [3, 1, 2, 1], [1.0, 0.3333, 0.6667, 0.3333]),
        CohortRow("2025-02", 1, [1, 1, 0], [1.0, 1.0, 0.0]),
        CohortRow("2025-03", 1, [1, 0], [1.0, 0.0]),
    ]


async def test_churn_lists_lapsed_customers_by_spend(runtime: Runtime) -> None:
    ids = await load(runtime)
    async with runtime.factory() as session:
        lapsed = await retention.churn(session, today=date(2025, 4, 15), after_days=30)
    # Last stays: A 03-15 (31 days), B 03-01, D 03-10; C 03-30 and E 04-01 are recent.
    assert [(r["customer_id"], r["days_since"], r["spent"]) for r in lapsed] == [
        (ids["alice"], 31, 530.0), (ids["bruno"], 45, 210.5), (ids["dario"], 36, 80.0)]


async def test_complaint_rate_and_resolution_hours(runtime: Runtime) -> None:
    ids = await load(runtime)
    async with runtime.factory() as session, session.begin():
        session.add_all([
            Complaint(customer_id=ids["alice"], category="noise", opened_at=at("2025-03-15T10:00"),
                      resolved_at=at("2025-03-15T16:00"), status="resolved"),
            Complaint(customer_id=ids["alice"], category="noise", opened_at=at("2025-03-16T10:00"),
                      resolved_at=at("2025-03-16T12:00"), status="resolved"),
            Complaint(customer_id=ids["dario"], category="cleaning", opened_at=at("2025-03-10T08:00")),
            Complaint(customer_id=ids["elsa"], category="noise", opened_at=at("2025-04-01T08:00")),
        ])
    window = Window(at("2025-03-01T00:00"), at("2025-04-01T00:00"))
    async with runtime.factory() as session:
        report = await retention.complaints(session, window)
    assert report["by_category"] == [
        {"category": "cleaning", "opened": 1, "resolved": 0, "avg_resolution_hours": None},
        {"category": "noise", "opened": 2, "resolved": 2, "avg_resolution_hours": 4.0},
    ]
    # March: complaints from A and D; A, B, C, D stayed.
    assert (report["customers_with_complaint"], report["customers_in_contact"], report["rate"]) == (2, 4, 0.5)


async def test_reports_on_an_empty_database(runtime: Runtime) -> None:
    window = Window(at("2025-01-01T00:00"), at("2025-01-01T00:00") + timedelta(days=30))
    async with runtime.factory() as session:
        assert await retention.retention(session) == []
        assert await retention.cohorts(session) == []
        assert await retention.first_response(session, window) == []
        assert await retention.campaign_conversion(session) == []
        assert (await retention.complaints(session, window))["rate"] is None


async def test_cross_sell_suggests_what_similar_customers_bought(runtime: Runtime) -> None:
    from hub.analytics import crosssell

    ids = await load(runtime)
    async with runtime.factory() as session:
        hints = await crosssell.suggestions(session, ids["dario"])
        together = await crosssell.pairs(session, min_customers=2)
    # Dario bought a room; A, B, E did too. Their other products: spa (A), dinner (E).
    assert hints == [{"product": "dinner", "score": 1, "buyers": 1}, {"product": "spa", "score": 1, "buyers": 1}]
    # room+spa: A; suite+spa: C; room+dinner: E -> no pair reaches two customers.
    assert together == []
