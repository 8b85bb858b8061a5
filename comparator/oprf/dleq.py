"""Batched discrete-log-equality proofs (RFC 9497 section 2.2).

The server proves that the same key k relates A to B (B = k*A, A the generator) and every C[i] to
D[i] (D[i] = k*C[i]) with ONE proof for the whole batch: both lists are folded into the composites
M = sum d_i*C[i] and Z = sum d_i*D[i] with d_i = HashToScalar(seed, i, C[i], D[i]), then a Schnorr-
style proof of log_A(B) = log_M(Z) is made.

    prover (knows k)                               verifier
    (M, Z) = ComputeCompositesFast(k, B, C, D)     (M, Z) = ComputeComposites(B, C, D)
    r random; t2 = r*A; t3 = r*M
    c = H(B, M, Z, t2, t3); s = r - c*k  --(c,s)-->
                                                   t2 = s*A + c*B; t3 = s*M + c*Z
                                                   accept iff H(B, M, Z, t2, t3) == c

The composite sums are split across the worker pool (one partial sum per chunk, added at the end).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from comparator import group
from comparator.errors import DeserializeError, InvalidInputError, VerifyError
from comparator.oprf import parallel
from comparator.oprf.suite import (
    ELEMENT_LENGTH,
    MAX_VERIFIABLE_BATCH,
    PROOF_LENGTH,
    SCALAR_LENGTH,
    Suite,
    i2osp,
)

_LEN_ELEMENT = i2osp(ELEMENT_LENGTH, 2)


def _seed(suite: Suite, b: bytes) -> bytes:
    # seedDST = "Seed-" || contextString
    # seedTranscript = I2OSP(len(Bm), 2) || Bm || I2OSP(len(seedDST), 2) || seedDST
    transcript = _LEN_ELEMENT + b + i2osp(len(suite.seed_dst), 2) + suite.seed_dst
    return hashlib.sha512(transcript).digest()  # seed = Hash(seedTranscript)


def _composite_scalars(
    suite: Suite, seed: bytes, c: Sequence[bytes], d: Sequence[bytes], start: int
) -> list[bytes]:
    # compositeTranscript = I2OSP(len(seed), 2) || seed || I2OSP(i, 2) ||
    #                       I2OSP(len(Ci), 2) || Ci || I2OSP(len(Di), 2) || Di || "Composite"
    # di = G.HashToScalar(compositeTranscript)
    head = i2osp(len(seed), 2) + seed
    transcripts = [
        head + (start + i).to_bytes(2, "big") + _LEN_ELEMENT + ci + _LEN_ELEMENT + di + b"Composite"
        for i, (ci, di) in enumerate(zip(c, d, strict=True))
    ]
    return group.hash_to_scalar_batch(transcripts, suite.scalar_expander)


def _check_batch(c: Sequence[bytes], d: Sequence[bytes]) -> None:
    if len(c) != len(d):
        raise InvalidInputError(f"proof batch lists differ in length ({len(c)} and {len(d)})")
    if not 0 < len(c) <= MAX_VERIFIABLE_BATCH:
        raise InvalidInputError(
            f"a proof covers 1 to {MAX_VERIFIABLE_BATCH} elements (I2OSP(i, 2)), got {len(c)}"
        )


def compute_composites_fast(
    suite: Suite, k: bytes, b: bytes, c: Sequence[bytes], d: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """ComputeCompositesFast: the prover knows k, so Z = k*M (one multiplication, not m)."""
    _check_batch(c, d)
    seed = _seed(suite, b)

    def chunk(start: int, stop: int) -> bytes:
        ds = _composite_scalars(suite, seed, c[start:stop], d[start:stop], start)
        return group.sum_of_products(ds, c[start:stop])  # M = di * C[i] + M

    m = _sum(parallel.map_ranges(chunk, len(c)))
    z = group.scalar_mult(k, m)  # Z = k * M
    return m, z


def compute_composites(
    suite: Suite,
    b: bytes,
    c: Sequence[bytes],
    d: Sequence[bytes],
    *,
    check_c: str | None = None,
    check_d: str | None = None,
) -> tuple[bytes, bytes]:
    """ComputeComposites (verifier).

    The list that came from outside is validated here, by the multiplication that uses it:
    ``check_c``/``check_d`` name it in error messages ("evaluated element 3: ..."); a list whose
    label is None must already be valid.
    """
    _check_batch(c, d)
    seed = _seed(suite, b)

    def chunk(start: int, stop: int) -> tuple[bytes, bytes]:
        cs, ds_ = c[start:stop], d[start:stop]
        ds = _composite_scalars(suite, seed, cs, ds_, start)
        m = group.sum_of_products(  # M = di * C[i] + M
            ds, cs, validate=check_c is not None, start=start, what=check_c or ""
        )
        z = group.sum_of_products(  # Z = di * D[i] + Z
            ds, ds_, validate=check_d is not None, start=start, what=check_d or ""
        )
        return m, z

    parts = parallel.map_ranges(chunk, len(c))
    return _sum([p[0] for p in parts]), _sum([p[1] for p in parts])


def _sum(elements: list[bytes]) -> bytes:
    acc = elements[0]
    for e in elements[1:]:
        acc = group.add(acc, e)
    return acc


def _challenge(suite: Suite, b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    # challengeTranscript = I2OSP(len(Bm), 2) || Bm || I2OSP(len(a0), 2) || a0 ||
    #                       I2OSP(len(a1), 2) || a1 || I2OSP(len(a2), 2) || a2 ||
    #                       I2OSP(len(a3), 2) || a3 || "Challenge"
    transcript = b"".join(_LEN_ELEMENT + x for x in (b, m, z, t2, t3)) + b"Challenge"
    return suite.hash_to_scalar(transcript)  # c = G.HashToScalar(challengeTranscript)


def generate_proof(
    suite: Suite,
    k: bytes,
    a: bytes,
    b: bytes,
    c: Sequence[bytes],
    d: Sequence[bytes],
    *,
    rng: group.RandomSource = os.urandom,
    _test_r: bytes | None = None,
) -> bytes:
    """GenerateProof(k, A, B, C, D) -> SerializeScalar(c) || SerializeScalar(s).

    ``_test_r`` fixes the proof nonce for the RFC vectors. TEST ONLY: a repeated r with two
    different challenges reveals k. Use comparator.oprf._testing, never this argument directly.
    """
    m, z = compute_composites_fast(suite, k, b, c, d)  # (M, Z) = ComputeCompositesFast(k, B, C, D)
    r = group.random_scalar(rng) if _test_r is None else _test_r  # r = G.RandomScalar()
    t2 = group.base_mult(r) if a == group.GENERATOR else group.scalar_mult(r, a)  # t2 = r * A
    t3 = group.scalar_mult(r, m)  # t3 = r * M
    ch = _challenge(suite, b, m, z, t2, t3)
    s = group.scalar_sub(r, group.scalar_mul(ch, k))  # s = r - c * k
    return ch + s  # SerializeScalar(c) || SerializeScalar(s)


def verify_proof(
    suite: Suite,
    a: bytes,
    b: bytes,
    c: Sequence[bytes],
    d: Sequence[bytes],
    proof: bytes | None,
    *,
    check_c: str | None = None,
    check_d: str | None = None,
) -> None:
    """VerifyProof(A, B, C, D, proof); raises VerifyError (or DeserializeError for bad D/proof)."""
    if proof is None:
        raise VerifyError("the evaluation carries no proof")
    if len(proof) != PROOF_LENGTH:
        raise VerifyError(f"proof must be {PROOF_LENGTH} bytes, got {len(proof)}")
    proof = bytes(proof)
    try:
        ch = group.deserialize_scalar(proof[:SCALAR_LENGTH])  # c = G.DeserializeScalar(proof[0:Ns])
        s = group.deserialize_scalar(proof[SCALAR_LENGTH:])  # s = G.DeserializeScalar(proof[Ns:])
    except DeserializeError:
        # A proof is verified or not: which part was malformed tells an attacker nothing useful
        # but is folded into one error all the same.
        raise VerifyError("the proof does not verify against the server's public key") from None
    # (M, Z) = ComputeComposites(B, C, D)
    m, z = compute_composites(suite, b, c, d, check_c=check_c, check_d=check_d)
    s_a = group.base_mult(s) if a == group.GENERATOR else group.scalar_mult(s, a)
    t2 = group.add(s_a, group.scalar_mult(ch, b))  # t2 = ((s * A) + (c * B))
    t3 = group.add(group.scalar_mult(s, m), group.scalar_mult(ch, z))  # t3 = ((s * M) + (c * Z))
    expected = _challenge(suite, b, m, z, t2, t3)  # expectedC = G.HashToScalar(challengeTranscript)
    if not hmac.compare_digest(expected, ch):  # verified = (expectedC == c)
        raise VerifyError("the proof does not verify against the server's public key")
