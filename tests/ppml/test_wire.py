import pytest

from darkscope.ppml.wire import Message, WireFormatError, decode


def _sample() -> bytes:
    return Message({"kind": "test", "n": 2}, [b"a" * 100, b"bb" * 50]).encode()


def test_roundtrip():
    message = decode(_sample())
    assert message.header == {"kind": "test", "n": 2}
    assert message.chunks == [b"a" * 100, b"bb" * 50]


def test_truncated_message_is_rejected():
    with pytest.raises(WireFormatError, match="truncated: header announces"):
        decode(_sample()[:-7], "upload")


def test_flipped_byte_is_rejected_naming_the_chunk():
    data = bytearray(_sample())
    data[-3] ^= 0x01
    with pytest.raises(WireFormatError, match=r"chunk 1 .* SHA-256"):
        decode(bytes(data), "upload")


def test_not_a_container():
    with pytest.raises(WireFormatError, match="bad magic"):
        decode(b"GET / HTTP/1.1\r\n")
