"""Cross-sell hints: products bought by customers who share purchases with this one, and not yet by it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.store.models import Stay


async def suggestions(session: AsyncSession, customer_id: int, *, limit: int = 5) -> list[dict[str, Any]]:
    """Products ranked by how many similar customers bought them, weighted by how similar they are.

    Similar customers are those who bought at least one of this customer's products; the weight
    is the number of products they share, so close neighbours count more.
    """
    mine = select(col(Stay.product)).where(col(Stay.customer_id) == customer_id).distinct()
    neighbours = (
        select(col(Stay.customer_id).label("customer_id"), func.count(func.distinct(col(Stay.product))).label("shared"))
        .where(col(Stay.product).in_(mine), col(Stay.customer_id) != customer_id)
        .group_by(col(Stay.customer_id)).subquery("neighbours")
    )
    score = func.sum(neighbours.c.shared)
    buyers = func.count(func.distinct(col(Stay.customer_id)))
    query = (
        select(col(Stay.product), score.label("score"), buyers.label("buyers"))
        .join(neighbours, neighbours.c.customer_id == col(Stay.customer_id))
        .where(col(Stay.product).not_in(mine))
        .group_by(col(Stay.product)).order_by(score.desc(), buyers.desc(), col(Stay.product)).limit(limit)
    )
    return [{"product": product, "score": int(s), "buyers": int(b)}
            for product, s, b in (await session.execute(query)).all()]


async def pairs(session: AsyncSession, *, min_customers: int = 2, limit: int = 20) -> list[dict[str, Any]]:
    """Product pairs bought by the same customers, most shared first (the basis of the hints)."""
    bought: Any = select(col(Stay.customer_id).label("customer_id"), col(Stay.product).label("product")).distinct()
    a, b = bought.subquery("a"), bought.subquery("b")
    together = func.count()
    query = (
        select(a.c.product, b.c.product, together)
        .join(b, (b.c.customer_id == a.c.customer_id) & (b.c.product > a.c.product))
        .group_by(a.c.product, b.c.product).having(together >= min_customers)
        .order_by(together.desc(), a.c.product, b.c.product).limit(limit)
    )
    return [{"product": p, "with": q, "customers": int(n)} for p, q, n in (await session.execute(query)).all()]
