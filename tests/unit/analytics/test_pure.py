"""Pure parts of the analytics: CSV checking, period numbering, exports and chart geometry."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.dialects import postgresql, sqlite

from hub.analytics import classifier, export, orders
from hub.analytics.retention import period_label, period_of
from hub.web import report_charts


def test_csv_rows_are_checked_with_file_and_line() -> None:
    report = orders.ImportReport("pms.csv")
    text = ("external_id,date,amount,email,kind,nights\n"
            "a,2025-01-01,10.5,a@x.test,stay,2\n"
            '"b",2025-01-02,abc,b@x.test,stay,1\n'
            "c,2025-01-03,10,,stay,1\n"
            "a,2025-01-01,10.5,a@x.test,stay,2\n"
            "d,2025-01-04,10,d@x.test,cruise,1\n"
            "e,2025-01-05,10,not-an-address,stay,x\n")
    rows = orders.read_rows("pms.csv", text, report)
    assert [(r.external_id, r.amount_cents, r.nights) for r in rows] == [("a", 1050, 2)]
    assert [str(e) for e in report.errors] == [
        "pms.csv:3: amount 'abc' is not a number",
        "pms.csv:4: no customer_id, email or phone",
        "pms.csv:6: kind 'cruise' is not one of stay, order",
        "pms.csv:7: nights 'x' is not a whole number",
    ]
    assert (report.read, report.duplicates) == (6, 1)


def test_missing_columns_are_one_error_on_line_one() -> None:
    report = orders.ImportReport("x.csv")
    assert orders.read_rows("x.csv", "id,when\n1,2\n", report) == []
    assert [str(e) for e in report.errors] == ["x.csv:1: missing column(s): external_id, date, amount"]


def test_periods_number_consecutively_and_label_back() -> None:
    assert period_of(date(2025, 1, 31), "month") + 1 == period_of(date(2025, 2, 1), "month")
    assert period_of(date(2024, 12, 31), "month") + 1 == period_of(date(2025, 1, 1), "month")
    assert period_label(period_of(date(2025, 3, 9), "month"), "month") == "2025-03"
    assert period_label(period_of(date(2025, 8, 9), "quarter"), "quarter") == "2025-Q3"
    assert period_label(period_of(date(2025, 8, 9), "year"), "year") == "2025"


def test_exports() -> None:
    rows = [{"period": "2025-01", "active": 3, "rate": None, "series": [3, 1]},
            {"period": "2025-02", "active": 2, "rate": 0.5, "extra": "x"}]
    assert export.to_csv(rows).splitlines() == ["period,active,rate,series,extra", "2025-01,3,,3;1,",
                                                "2025-02,2,0.5,,x"]
    assert export.retention_png(rows).startswith(b"\x89PNG\r\n\x1a\n")


def test_charts_are_empty_without_data_and_scaled_with_it() -> None:
    assert report_charts.stacked_stages([], ("key",)).empty
    assert report_charts.heatmap([]).empty
    assert report_charts.bars([{"agent": "a", "n": 0}], "agent", ("n",)).empty
    chart = report_charts.bars([{"agent": "a", "n": 2}, {"agent": "b", "n": 1}], "agent", ("n",))
    assert [round(s.w) for s in chart.shapes] == [440, 220]
    heat = report_charts.heatmap([{"cohort": "2025-01", "size": 2, "active": [2, 1], "rates": [1.0, 0.5]}])
    assert [s.opacity for s in heat.shapes] == [1.0, 0.54]


def test_the_query_computes_only_what_the_rules_test() -> None:
    def sql(rules: list[dict[str, object]], dialect: object) -> str:
        query = classifier.decisions(classifier.parse_rules(rules), date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC),
                                     dialect)
        return str(query.compile(dialect=dialect)).lower()  # type: ignore[arg-type]

    spend = [{"stage": "key", "condition": {"field": "rfm.m", "op": "gte", "value": 4}}]
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        only_m = sql(spend, dialect)
        assert only_m.count("ntile(") == 1 and "survey" not in only_m and "complaint" not in only_m
        assert "referrals" not in only_m
        tags = sql([{"stage": "sub_zero", "condition": {"field": "customer.tags", "op": "contains", "value": "x"}}],
                   dialect)
        assert " stay" not in tags and "ntile(" not in tags
        everything = sql(classifier.DEFAULT_RULES, dialect)
        # The defaults test f and m, never r: two sorts, not three.
        assert everything.count("ntile(") == 2 and "survey" in everything and "referrals" in everything


def test_fields_of_names_dict_fields_by_their_holder() -> None:
    from hub.analytics import rfm
    from hub.routing.conditions import validate

    cond = validate({"any": [{"not": {"field": "customer.attributes.vip", "op": "equals", "value": "y"}},
                             {"all": [{"field": "rfm.f", "op": "gte", "value": 4}]}]}, fields=rfm.FIELDS)
    assert classifier.fields_of(cond) == {"customer.attributes", "rfm.f"}
