"""RFC 9380 expand_message_xmd (SHA-512) against the RFC's own vectors, and its fast path."""

from __future__ import annotations

from comparator.xmd import Expander64, expand_message_xmd


def test_expand_message_xmd_rfc9380_vectors() -> None:
    # RFC 9380 appendix K.3, expand_message_xmd(SHA-512)
    dst = b"QUUX-V01-CS02-with-expander-SHA512-256"
    assert expand_message_xmd(b"", dst, 0x20).hex() == (
        "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"
    )
    assert expand_message_xmd(b"abc", dst, 0x20).hex() == (
        "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"
    )
    # len_in_bytes 0x80 exercises ell > 1
    assert expand_message_xmd(b"", dst, 0x80).hex() == (
        "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
        "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
        "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
        "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961"
    )


def test_expander64_matches_expand_message_xmd() -> None:
    dst = b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512"
    expander = Expander64(dst)
    for msg in (b"", b"\x00", b"x" * 300):
        assert expander(msg) == expand_message_xmd(msg, dst, 64)
