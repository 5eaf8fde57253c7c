"""Symbol policy: payload shapes, normalisation, sharding."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coin_sync.backend.wire import MISSING, ListedSymbol, parse_symbols_payload
from coin_sync.sync.freshness import stamp
from coin_sync.sync.listing import Listing
from coin_sync.sync.symbols import normalise_symbols, select_shard, shard_of


def test_both_payload_shapes() -> None:
    objects = {
        "success": True,
        "count": 2,
        "symbols": [
            {"symbol": "BTCUSDT", "total_records": 1, "last_record": "2025-11-17T14:45:00+00:00"},
            {"symbol": "ETHUSDT", "last_record": None},
            {"symbol": " btcusdt"},
        ],
    }
    rows = parse_symbols_payload(objects)
    assert rows == [
        ListedSymbol("BTCUSDT", "2025-11-17T14:45:00+00:00", MISSING, 1),
        # An object row should carry them: null is missing.
        ListedSymbol("ETHUSDT", MISSING, MISSING, MISSING),
        ListedSymbol(" btcusdt", MISSING, MISSING, MISSING),
    ]
    # The first row of a normalised name wins.
    assert Listing.from_rows(rows).stamps == {
        "BTCUSDT": stamp("2025-11-17T14:45:00+00:00"),
        "ETHUSDT": stamp(MISSING),
    }
    # A bare name carries no timestamp, and none is expected.
    assert parse_symbols_payload(["BTCUSDT", "ETHUSDT"]) == [ListedSymbol("BTCUSDT"), ListedSymbol("ETHUSDT")]
    assert parse_symbols_payload({"success": True, "count": 0, "symbols": []}) == []


@pytest.mark.parametrize(
    "payload",
    [{"error": True, "message": "x"}, "BTCUSDT", 5, [1, 2], {"symbols": [{"x": 1}]}, {"success": False, "symbols": []}],
)
def test_unusable_payloads(payload: object) -> None:
    with pytest.raises(ValueError):
        parse_symbols_payload(payload)


def test_normalise_strips_uppercases_dedupes_keeping_order() -> None:
    kept, rejected = normalise_symbols([" btcusdt", "ETHUSDT ", "BTCUSDT", "ethusdt", "bnbusdt"])
    assert kept == ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    assert rejected == []


def test_non_ascii_letters_are_valid() -> None:
    kept, rejected = normalise_symbols(["币安人生USDT"])
    assert kept == ["币安人生USDT"] and not rejected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "vacío"),
        ("   ", "vacío"),
        ("A" * 21, "20"),
        ("BTC USDT", "' '"),
        ("BTC\nUSDT", "'\\n'"),
        ("BTC\x00USDT", "'\\x00'"),
        ("BTC\u200bUSDT", "'\\u200b'"),
        ("@@@", "'@'"),
        ("ÑOÑO", "'Ñ'"),
        ("BTC-USDT", "'-'"),
    ],
)
def test_rejections(raw: str, reason: str) -> None:
    kept, rejected = normalise_symbols([raw, "OKUSDT"])
    assert kept == ["OKUSDT"]
    assert len(rejected) == 1 and reason in rejected[0].reason
    assert "\n" not in rejected[0].shown  # escaped, never a raw newline in a log line


def test_20_characters_is_still_valid() -> None:
    assert normalise_symbols(["A" * 20, "1000SATSUSDT"])[0] == ["A" * 20, "1000SATSUSDT"]


def test_shards_partition_the_symbols() -> None:
    symbols = [f"C{i:04d}USDT" for i in range(1000)]
    shards = [select_shard(symbols, i, 4) for i in range(4)]
    assert sorted(s for shard in shards for s in shard) == sorted(symbols)
    assert all(180 < len(shard) < 320 for shard in shards)  # sha256 spreads evenly
    assert select_shard(symbols, 0, 1) == symbols


def test_shard_assignment_is_stable_across_releases() -> None:
    # Golden values: if these change, a rollout would move symbols between shards.
    assert [shard_of(s, 4) for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")] == [1, 2, 0, 1]


def test_shard_assignment_does_not_depend_on_hash_seed() -> None:
    code = "from coin_sync.sync.symbols import shard_of; print([shard_of(f'S{i}', 7) for i in range(50)])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
