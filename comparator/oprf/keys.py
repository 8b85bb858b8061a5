"""Server key pairs (RFC 9497 section 3.2): random generation and deterministic derivation.

A private key is a 32-byte canonical non-zero scalar skS; the public key is pkS = skS * G, used by
the verifiable modes (VOPRF, POPRF). Keep private keys secret: never log or send them.
"""

from __future__ import annotations

import os

from comparator import group
from comparator.errors import DeriveKeyPairError, InvalidInputError
from comparator.oprf.suite import SEED_LENGTH, SUITES, Mode, check_info, i2osp


def generate_key_pair(mode: Mode, *, rng: group.RandomSource = os.urandom) -> tuple[bytes, bytes]:
    """A random (skS, pkS). The mode is accepted for symmetry with derive_key_pair: keys are the
    same kind in every mode, but a key should be used in one mode only."""
    Mode(mode)
    sk = group.random_scalar(rng)  # skS = G.RandomScalar()
    return sk, group.base_mult(sk)  # pkS = G.ScalarMultGen(skS)


def derive_key_pair(seed: bytes, info: bytes, mode: Mode) -> tuple[bytes, bytes]:
    """DeriveKeyPair(seed, info): the same (skS, pkS) for the same seed, info and mode.

    ``seed`` must hold at least Nseed = 32 bytes of secret entropy (the RFC fixes its length at
    Nseed; longer seeds are accepted, shorter ones refused because they make a guessable key).
    """
    suite = SUITES[Mode(mode)]
    if not isinstance(seed, bytes | bytearray | memoryview):
        raise TypeError("seed must be bytes")
    if len(seed) < SEED_LENGTH:
        raise InvalidInputError(f"seed must be at least {SEED_LENGTH} bytes, got {len(seed)}")
    info = check_info(info)
    derive_input = bytes(seed) + i2osp(len(info), 2) + info  # seed || I2OSP(len(info), 2) || info
    for counter in range(256):  # if counter > 255: raise DeriveKeyPairError
        # skS = G.HashToScalar(deriveInput || I2OSP(counter, 1),
        #                      DST = "DeriveKeyPair" || contextString)
        sk = group.hash_to_scalar(derive_input + i2osp(counter, 1), suite.derive_key_pair_dst)
        if sk != group.ZERO_SCALAR:  # while skS == 0
            return sk, group.base_mult(sk)  # pkS = G.ScalarMultGen(skS)
    raise DeriveKeyPairError("DeriveKeyPair: no valid key after 256 attempts")  # pragma: no cover
