"""RFC 9380 section 5.3.1 expand_message_xmd with SHA-512: the hash under RFC 9497's
HashToGroup and HashToScalar for ristretto255-SHA512 (used by ``group``).

Pure ``hashlib``; ``Expander64`` precomputes what a fixed DST allows, for the batch paths.
"""

from __future__ import annotations

import hashlib

__all__ = ["Expander64", "expand_message_xmd"]


def _dst_prime(dst: bytes) -> bytes:
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")  # RFC 9380 section 5.3.3 (we never need it)
    return dst + bytes([len(dst)])  # DST_prime = DST || I2OSP(len(DST), 1)


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 expand_message_xmd, H = SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    ell = -(-length // 64)  # ell = ceil(len_in_bytes / b_in_bytes)
    if ell > 255 or length > 65535:
        raise ValueError("expand_message_xmd: requested length too large")
    dst_prime = _dst_prime(dst)
    # msg_prime = Z_pad || msg || l_i_b_str || I2OSP(0, 1) || DST_prime
    msg_prime = bytes(128) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime
    b0 = hashlib.sha512(msg_prime).digest()  # b_0 = H(msg_prime)
    # b_1 = H(b_0 || I2OSP(1, 1) || DST_prime)
    b = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [b]
    for i in range(2, ell + 1):
        # b_i = H(strxor(b_0, b_(i - 1)) || I2OSP(i, 1) || DST_prime)
        x = bytes(p ^ q for p, q in zip(b0, b, strict=True))
        b = hashlib.sha512(x + bytes([i]) + dst_prime).digest()
        out.append(b)
    return b"".join(out)[:length]  # uniform_bytes = b_1 || ... || b_ell, truncated


class Expander64:
    """expand_message_xmd(msg, DST, 64) with the DST-dependent parts precomputed.

    With SHA-512 and 64 output bytes, ell = 1: two hash calls per message. Z_pad is one SHA-512
    block, so its compression is done once here and each message starts from a copy of that state.
    """

    __slots__ = ("_b1_suffix", "_prefix", "_suffix")

    def __init__(self, dst: bytes) -> None:
        dst_prime = _dst_prime(dst)
        self._prefix = hashlib.sha512(bytes(128))  # Z_pad
        self._suffix = (64).to_bytes(2, "big") + b"\x00" + dst_prime  # l_i_b_str || 0 || DST'
        self._b1_suffix = b"\x01" + dst_prime  # I2OSP(1, 1) || DST_prime

    def __call__(self, msg: bytes) -> bytes:
        h = self._prefix.copy()
        h.update(msg)
        h.update(self._suffix)
        return hashlib.sha512(h.digest() + self._b1_suffix).digest()
