"""Content-addressed storage for attachment bytes (filesystem by default)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, ref: str) -> bytes: ...


class FileBlobStore:
    """Files named by SHA-256 under a root; writing the same bytes twice is a no-op."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store bytes and return their reference (`sha256:<hex>`)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        return f"sha256:{digest}"

    def get(self, ref: str) -> bytes:
        """Read the bytes behind a reference."""
        if not ref.startswith("sha256:") or len(ref) != 71:
            raise KeyError(ref)
        return self._path(ref[7:]).read_bytes()
