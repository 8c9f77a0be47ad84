"""Regenerate the single initial migration from the models (allowed until the first release).

Usage: python scripts/regen_migration.py
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from hub.settings import load_settings
from hub.store import migrate
from hub.store.engine import make_engine

VERSIONS = Path(migrate.__file__).parent / "migrations" / "versions"


async def main() -> None:
    for old in VERSIONS.glob("*.py"):
        if old.name != "__init__.py":
            old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(load_settings(database_url=f"sqlite:///{tmp}/empty.db"))
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: migrate.autogenerate(c, "initial schema"))
        await engine.dispose()
    for new in VERSIONS.glob("*_initial_schema.py"):
        text = new.read_text().replace("astext_type=Text()", "astext_type=sa.Text()")
        new.write_text(with_triggers(re.sub(r"Create Date: .*", "Create Date: (regenerated)", text)))
        print(f"wrote {new}")


END = "    # ### end Alembic commands ###\n"


def with_triggers(text: str) -> str:
    """The generated migration plus what autogenerate cannot see: the triggers of hub/store/triggers.py."""
    text = text.replace("import hub.store.types\n", "import hub.store.types\nfrom hub.store import triggers\n", 1)
    upgrade_end = text.index(END, text.index("def upgrade()")) + len(END)
    text = text[:upgrade_end] + "    triggers.install(op.execute, op.get_bind().dialect.name)\n" + text[upgrade_end:]
    downgrade = text.index("def downgrade() -> None:\n") + len("def downgrade() -> None:\n")
    return text[:downgrade] + "    triggers.drop(op.execute, op.get_bind().dialect.name)\n" + text[downgrade:]


if __name__ == "__main__":
    asyncio.run(main())
