"""Triggers the migrations install: `staytotals` kept in step with every write to `stay`.

Inserts add to the per-customer sums (imports and case outcomes: the common case); updates and
deletes (a merge moves stays between customers) count the customers they touch again from
`stay`. PostgreSQL runs one trigger per statement over its transition tables, SQLite one per row.
The SQL lives here rather than in a migration so that `scripts/regen_migration.py`, which writes
the initial migration again from the models, puts it back every time.
"""

from __future__ import annotations

from collections.abc import Callable

_SUMS = "count(*), sum(CASE WHEN kind = 'stay' THEN 1 ELSE 0 END), sum(amount_cents), max(stay_date)"
_COLUMNS = "customer_id, visits, stays, spend_cents, last_date"

_POSTGRESQL = [
    f"""CREATE FUNCTION staytotals_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO staytotals AS t ({_COLUMNS})
      SELECT customer_id, {_SUMS} FROM new_rows GROUP BY customer_id ORDER BY customer_id
      ON CONFLICT (customer_id) DO UPDATE SET visits = t.visits + EXCLUDED.visits, stays = t.stays + EXCLUDED.stays,
        spend_cents = t.spend_cents + EXCLUDED.spend_cents, last_date = greatest(t.last_date, EXCLUDED.last_date);
      RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION staytotals_recount() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE touched bigint[];
    BEGIN
      IF TG_OP = 'DELETE' THEN
        touched := ARRAY(SELECT DISTINCT customer_id FROM old_rows);
      ELSE
        touched := ARRAY(SELECT customer_id FROM old_rows UNION SELECT customer_id FROM new_rows);
      END IF;
      INSERT INTO staytotals AS t ({_COLUMNS})
      SELECT customer_id, {_SUMS} FROM stay WHERE customer_id = ANY(touched) GROUP BY customer_id ORDER BY customer_id
      ON CONFLICT (customer_id) DO UPDATE SET visits = EXCLUDED.visits, stays = EXCLUDED.stays,
        spend_cents = EXCLUDED.spend_cents, last_date = EXCLUDED.last_date;
      DELETE FROM staytotals t WHERE t.customer_id = ANY(touched)
        AND NOT EXISTS (SELECT 1 FROM stay s WHERE s.customer_id = t.customer_id);
      RETURN NULL;
    END $$""",
    """CREATE FUNCTION staytotals_clear() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM staytotals;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER staytotals_insert AFTER INSERT ON stay REFERENCING NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION staytotals_add()""",
    """CREATE TRIGGER staytotals_update AFTER UPDATE ON stay REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION staytotals_recount()""",
    """CREATE TRIGGER staytotals_delete AFTER DELETE ON stay REFERENCING OLD TABLE AS old_rows
       FOR EACH STATEMENT EXECUTE FUNCTION staytotals_recount()""",
    "CREATE TRIGGER staytotals_truncate AFTER TRUNCATE ON stay FOR EACH STATEMENT EXECUTE FUNCTION staytotals_clear()",
]


def _recount_sqlite(customer: str) -> str:
    return (f"DELETE FROM staytotals WHERE customer_id = {customer}; "
            f"INSERT INTO staytotals ({_COLUMNS}) SELECT customer_id, {_SUMS} FROM stay "
            f"WHERE customer_id = {customer} GROUP BY customer_id;")


_SQLITE = [
    f"""CREATE TRIGGER staytotals_insert AFTER INSERT ON stay BEGIN
      INSERT INTO staytotals ({_COLUMNS})
      VALUES (NEW.customer_id, 1, CASE WHEN NEW.kind = 'stay' THEN 1 ELSE 0 END, NEW.amount_cents, NEW.stay_date)
      ON CONFLICT (customer_id) DO UPDATE SET visits = visits + 1, stays = stays + excluded.stays,
        spend_cents = spend_cents + excluded.spend_cents, last_date = max(last_date, excluded.last_date);
    END""",
    f"""CREATE TRIGGER staytotals_update AFTER UPDATE OF customer_id, kind, amount_cents, stay_date ON stay BEGIN
      {_recount_sqlite("OLD.customer_id")}
      {_recount_sqlite("NEW.customer_id")}
    END""",
    f"""CREATE TRIGGER staytotals_delete AFTER DELETE ON stay BEGIN
      {_recount_sqlite("OLD.customer_id")}
    END""",
]


def install(execute: Callable[[str], object], dialect: str) -> None:
    """Fill `staytotals` from the stays already there and create its triggers (migration upgrade)."""
    execute(f"INSERT INTO staytotals ({_COLUMNS}) SELECT customer_id, {_SUMS} FROM stay GROUP BY customer_id")
    for statement in _POSTGRESQL if dialect == "postgresql" else _SQLITE:
        execute(statement)


def drop(execute: Callable[[str], object], dialect: str) -> None:
    """Remove the triggers (migration downgrade, before the tables go)."""
    if dialect == "postgresql":
        for trigger in ("insert", "update", "delete", "truncate"):
            execute(f"DROP TRIGGER IF EXISTS staytotals_{trigger} ON stay")
        for function in ("add", "recount", "clear"):
            execute(f"DROP FUNCTION IF EXISTS staytotals_{function}()")
    else:
        for trigger in ("insert", "update", "delete"):
            execute(f"DROP TRIGGER IF EXISTS staytotals_{trigger}")
