"""Text folding shared by the Python operators and the SQLite functions, so both agree."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"\w+")


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped, casefolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


@lru_cache(maxsize=4096)
def words(text: str) -> str:
    """Folded words joined by single spaces and padded, so " phrase " finds whole words only."""
    return " " + " ".join(_WORD.findall(fold(text))) + " "
