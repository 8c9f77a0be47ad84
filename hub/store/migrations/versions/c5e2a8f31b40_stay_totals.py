"""stay totals per customer, kept by triggers on stay

The classifier aggregated every stay of every customer each night (5M rows at 1M customers);
`staytotals` keeps the per-customer sums as stays are written, so a night's run reads one row per
buying customer. Inserts add to the sums (the common case: imports, case outcomes); updates and
deletes (merges move stays between customers) count the customers they touch again from `stay`.
PostgreSQL runs one trigger per statement over its transition table, SQLite one per row.

Revision ID: c5e2a8f31b40
Revises: b41c0d2e9a17
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5e2a8f31b40"
down_revision: str | None = "b41c0d2e9a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUMS = ("count(*), sum(CASE WHEN kind = 'stay' THEN 1 ELSE 0 END), sum(amount_cents), max(stay_date)")
_COLUMNS = "customer_id, visits, stays, spend_cents, last_date"

POSTGRESQL = [
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


SQLITE = [
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


def upgrade() -> None:
    op.create_table(
        "staytotals",
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("visits", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stays", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("spend_cents", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.execute(f"INSERT INTO staytotals ({_COLUMNS}) SELECT customer_id, {_SUMS} FROM stay GROUP BY customer_id")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("ANALYZE staytotals")  # filled in one go: plans over it need its row count now
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER staytotals_{trigger} ON stay")
        for function in ("add", "recount", "clear"):
            op.execute(f"DROP FUNCTION staytotals_{function}()")
    else:
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER staytotals_{trigger}")
    op.drop_table("staytotals")
