"""MurmurHash2 and canary bucketing exactly as nginx's split_clients computes them.

Keys are hashed as the bytes on the wire: UTF-8, with undecodable bytes kept through surrogateescape.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
BUCKETS = 10000  # split_clients works in hundredths of a percent


def murmurhash2(data: bytes, seed: int = 0) -> int:
    """32-bit MurmurHash2 as in nginx's ngx_murmur_hash2 (nginx always uses seed 0)."""
    length = len(data)
    h = (seed ^ length) & _MASK
    full = length - length % 4
    for i in range(0, full, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length - full
    if tail == 3:
        h ^= data[full + 2] << 16
    if tail >= 2:
        h ^= data[full + 1] << 8
    if tail >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def _boundary(hundredths: int) -> int:
    # nginx: last += percent * (uint64_t) 0xffffffff / 10000; a key is in the part while hash < last.
    return hundredths * _MASK // BUCKETS


def split_bucket(key: str) -> int:
    """The key's bucket 0..9999: in a canary of W% exactly when bucket < W * 100."""
    h = murmurhash2(key.encode("utf-8", "surrogateescape"))
    bucket = min(h * BUCKETS // _MASK, BUCKETS - 1)
    # The integer division above can land one off nginx's boundaries; settle on the largest b with boundary(b) <= h.
    while bucket + 1 < BUCKETS and _boundary(bucket + 1) <= h:
        bucket += 1
    while bucket > 0 and _boundary(bucket) > h:
        bucket -= 1
    return bucket


def in_canary(key: str, weight: int) -> bool:
    """Same answer as the rendered `split_clients` block `weight% canary; * stable;` (0 and 100 need no hashing)."""
    if weight <= 0:
        return False
    if weight >= 100:
        return True
    return murmurhash2(key.encode("utf-8", "surrogateescape")) < _boundary(weight * 100)
