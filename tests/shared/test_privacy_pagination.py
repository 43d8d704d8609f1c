"""Keyed identity hashes and masks, and the opaque pagination cursor."""
from __future__ import annotations

import base64
import json

import pytest

from shared.errors import Invalid
from shared.pagination import decode_cursor, encode_cursor
from shared.privacy import hash_identity, mask_identity

ID = "42010619900101123X"


def test_same_key_and_number_give_the_same_hash() -> None:
    assert hash_identity("key-a", ID) == hash_identity("key-a", ID)


def test_different_key_gives_a_different_hash() -> None:
    assert hash_identity("key-a", ID) != hash_identity("key-b", ID)


def test_different_numbers_give_different_hashes() -> None:
    assert hash_identity("key-a", ID) != hash_identity("key-a", "420106199001011231")


def test_hash_is_hex_sha256_and_does_not_contain_the_number() -> None:
    digest = hash_identity("key-a", ID)
    assert len(digest) == 64
    int(digest, 16)
    assert ID.lower() not in digest and "19900101" not in digest


def test_hash_is_keyed_not_a_plain_sha256() -> None:
    import hashlib

    assert hash_identity("key-a", ID) != hashlib.sha256(ID.encode()).hexdigest()


@pytest.mark.parametrize("variant", [" 42010619900101123X ", "42010619900101123x", "\t42010619900101123x\n"])
def test_hash_normalises_whitespace_and_case(variant: str) -> None:
    assert hash_identity("key-a", variant) == hash_identity("key-a", ID)


def test_mask_keeps_only_first_three_and_last_two() -> None:
    assert mask_identity(ID) == "420" + "*" * 13 + "3X"


def test_mask_keeps_length_and_trims_whitespace() -> None:
    masked = mask_identity("  " + ID + " ")
    assert len(masked) == len(ID)
    assert masked.startswith("420") and masked.endswith("3X")
    assert set(masked[3:-2]) == {"*"}


@pytest.mark.parametrize(("value", "masked"), [("", ""), ("12345", "*****"), ("123456", "123*56")])
def test_short_numbers_are_masked_entirely(value: str, masked: str) -> None:
    assert mask_identity(value) == masked


@pytest.mark.parametrize("key", [
    ("2024-05-01T08:00:00+00:00", "inc-1"), (3, "s1"), ("naïve ünïcode", None), (1.5, True, "x"),
])
def test_cursor_round_trips_its_sort_key(key: tuple) -> None:
    cursor = encode_cursor(*key)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor) == list(key)


@pytest.mark.parametrize("empty", [None, ""])
def test_no_cursor_means_first_page(empty: str | None) -> None:
    assert decode_cursor(empty) is None


@pytest.mark.parametrize("tampered", [
    "not base64 at all!",
    encode_cursor("a", 1)[:-3],
    base64.urlsafe_b64encode(b"{not json").decode(),
    base64.urlsafe_b64encode(json.dumps({"k": 1}).encode()).decode(),
    base64.urlsafe_b64encode(json.dumps("a string").encode()).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
])
def test_tampered_cursor_is_invalid(tampered: str) -> None:
    with pytest.raises(Invalid):
        decode_cursor(tampered)



def test_a_keyset_reads_back_the_cursors_it_hands_out_for_sqlmodel_columns() -> None:
    import datetime as dt

    from sqlalchemy import Column, Date, Integer, MetaData, Table
    from sqlmodel.sql.sqltypes import AutoString

    from shared.pagination import Keyset

    # SQLModel's str columns are an AutoString TypeDecorator, whose own python_type is `object`
    probe = Table("keyset_probe", MetaData(), Column("id", AutoString(64), primary_key=True), Column("day", Date),
                  Column("n", Integer))
    keyset = Keyset(probe.c.day, probe.c.n, probe.c.id)
    assert keyset.types == (dt.date, int, str)
    cursor = encode_cursor(dt.date(2026, 5, 1), 3, "ps-a")
    assert decode_cursor(cursor, *keyset.types) == [dt.date(2026, 5, 1), 3, "ps-a"]
