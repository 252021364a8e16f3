"""Seeds derived from integers, for random streams that depend on (seed, epoch, index...) only."""

from __future__ import annotations

import hashlib


def hash_seed(*parts: int) -> int:
    """A 63-bit seed from integers; nearby inputs give unrelated seeds."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
