"""Packs of trade-bars records (services/processor/packing.py): exact round trip, hostile packs refused."""

from __future__ import annotations

import pytest

from services.processor.packing import PACK_RECORDS, PackError, chunks, pack, unpack

RECORDS = [(b"BTC", b'{"id":"a"}'), (None, b"not json at all"), (b"ETH", None), (b"", b"")]


@pytest.mark.parametrize("caught_up", [True, False])
def test_a_pack_returns_its_records_unchanged_and_in_order(caught_up: bool) -> None:
    assert unpack(pack(RECORDS, caught_up)) == (RECORDS, caught_up)


def test_an_empty_pack_round_trips() -> None:
    assert unpack(pack([], True)) == ([], True)


@pytest.mark.parametrize("raw, reason", [
    (None, "shorter than a pack header"),
    (b"CPK", "shorter than a pack header"),
    (b"XXXX" + pack(RECORDS, True)[4:], "unknown pack format"),
    (pack(RECORDS, True)[:-3], "truncated after 3 of 4 records"),
    (pack([(b"k", b"value")], True)[:-2], "length 5 beyond the pack"),
    (pack(RECORDS, True) + b"!", "bytes after the last"),
    (pack(RECORDS, True)[:9] + b"\xff\xff\xff\xfe", "length -2 beyond the pack"),
    (pack(RECORDS, True)[:9], "truncated after 0 of 4 records"),
])
def test_a_malformed_pack_is_refused_with_the_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PackError, match=reason):
        unpack(raw)


def test_chunks_bound_records_and_bytes_and_keep_every_record_once() -> None:
    records = [(b"k", b"x" * size) for size in [10] * 600 + [5000, 10, 10]]
    runs = list(chunks(records, max_records=PACK_RECORDS, max_bytes=3000))
    assert [r for run in runs for r in run] == records
    assert all(len(run) <= PACK_RECORDS for run in runs)
    assert all(sum(len(v or b"") for _k, v in run) <= 3000 or len(run) == 1 for run in runs)
    assert [len(run) for run in runs] == [250, 250, 100, 1, 2]
