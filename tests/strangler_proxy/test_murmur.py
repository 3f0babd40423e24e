"""MurmurHash2 and the canary split (the real-nginx comparison lives in test_conformance.py)."""

from __future__ import annotations

import struct

import pytest

from strangler_proxy.murmur import in_canary, murmurhash2, split_bucket


def reference_murmurhash2(data: bytes, seed: int = 0) -> int:
    """Austin Appleby's MurmurHash2 written independently (struct, whole-block loop) as a cross-check."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = seed ^ len(data)
    blocks = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: blocks * 4]):
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = data[blocks * 4:]
    if rest:
        for i in reversed(range(len(rest))):
            h ^= rest[i] << (8 * i)
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def test_empty_input_hashes_to_zero():
    assert murmurhash2(b"") == 0


@pytest.mark.parametrize("length", range(0, 13))
def test_matches_an_independent_implementation_for_every_tail_length(length):
    for start in range(0, 200, 37):
        data = bytes((start + i * 31) % 256 for i in range(length))
        assert murmurhash2(data) == reference_murmurhash2(data)
        assert murmurhash2(data, seed=0x9747B28C) == reference_murmurhash2(data, seed=0x9747B28C)


def test_weight_edges():
    assert not any(in_canary(f"k{i}", 0) for i in range(500))
    assert all(in_canary(f"k{i}", 100) for i in range(500))


def test_canaries_are_nested_so_raising_the_weight_never_moves_a_user_back():
    for i in range(2000):
        key = f"user-{i}"
        inside = [in_canary(key, w) for w in range(101)]
        first = inside.index(True)
        assert all(inside[first:]) and not any(inside[:first])


def test_bucket_agrees_with_in_canary_at_every_weight():
    for i in range(1500):
        key = f"sess-{i:x}"
        bucket = split_bucket(key)
        assert 0 <= bucket < 10000
        for weight in range(0, 101, 3):
            assert in_canary(key, weight) == (bucket < weight * 100), (key, weight, bucket)


def test_split_is_close_to_the_weight_on_many_keys():
    keys = [f"visitor-{i}" for i in range(20000)]
    for weight in (1, 10, 37, 50, 90):
        share = sum(in_canary(k, weight) for k in keys) / len(keys)
        assert abs(share - weight / 100) < 0.012, (weight, share)
