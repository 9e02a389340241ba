"""Stage 2, pure: what becomes a dead letter at decode time, and why."""

from __future__ import annotations

import orjson
import pytest

from shipper.decode import Rejected, decode


def test_a_json_object_decodes() -> None:
    assert decode(b'{"message": "hi", "n": 1}', 1024) == {"message": "hi", "n": 1}


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"{not json", "decode"),
        (b"[1, 2, 3]", "not_object"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (b"null", "not_object"),
        (b"\xff\xfe\x00garbage", "not_utf8"),
        (b"\xc3\x28 not utf-8", "not_utf8"),
        (None, "empty"),
    ],
)
def test_rejections_carry_their_kind(value: bytes | None, kind: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode(value, 1024)
    assert caught.value.kind == kind
    assert caught.value.reason


def test_oversize_is_rejected_before_parsing() -> None:
    big = orjson.dumps({"message": "x" * 5000})
    with pytest.raises(Rejected) as caught:
        decode(big, 4096)
    assert caught.value.kind == "too_large"
    assert str(len(big)) in caught.value.reason
