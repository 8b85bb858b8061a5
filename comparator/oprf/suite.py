"""RFC 9497 suite definitions for ristretto255-SHA512: modes, context strings, DSTs, wire types.

Names follow the RFC: ``contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier``, and the
DSTs "HashToGroup-", "HashToScalar-", "DeriveKeyPair", "Seed-" prefixed to it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from comparator import group
from comparator.errors import InvalidInputError
from comparator.xmd import Expander64

SUITE_ID = "ristretto255-SHA512"
ELEMENT_LENGTH = group.ELEMENT_LENGTH  # Noe
SCALAR_LENGTH = group.SCALAR_LENGTH  # Nsk, Ns
OUTPUT_LENGTH = 64  # Nh: SHA-512
PROOF_LENGTH = 2 * SCALAR_LENGTH  # proof = SerializeScalar(c) || SerializeScalar(s)
SEED_LENGTH = 32  # Nseed for ristretto255-SHA512
#: Largest batch one DLEQ proof can cover: ComputeComposites encodes the index as I2OSP(i, 2).
MAX_VERIFIABLE_BATCH = 1 << 16
#: Inputs and info are length-prefixed with I2OSP(len, 2) in Finalize and the info framing.
MAX_INPUT_LENGTH = (1 << 16) - 1


class Mode(enum.IntEnum):
    """RFC 9497 section 3.1 protocol modes."""

    OPRF = 0x00
    VOPRF = 0x01
    POPRF = 0x02


def i2osp(value: int, length: int) -> bytes:
    """I2OSP: big-endian, fixed length (RFC 8017)."""
    return value.to_bytes(length, "big")


def context_string(mode: Mode) -> bytes:
    # contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier
    return b"OPRFV1-" + i2osp(int(mode), 1) + b"-" + SUITE_ID.encode()


class Suite:
    """The DSTs and precomputed hashing state of one mode of ristretto255-SHA512."""

    __slots__ = (
        "context",
        "derive_key_pair_dst",
        "group_expander",
        "hash_to_group_dst",
        "hash_to_scalar_dst",
        "mode",
        "scalar_expander",
        "seed_dst",
    )

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.context = context_string(mode)
        self.hash_to_group_dst = b"HashToGroup-" + self.context
        self.hash_to_scalar_dst = b"HashToScalar-" + self.context
        self.derive_key_pair_dst = b"DeriveKeyPair" + self.context
        self.seed_dst = b"Seed-" + self.context
        self.group_expander = Expander64(self.hash_to_group_dst)
        self.scalar_expander = Expander64(self.hash_to_scalar_dst)

    def hash_to_scalar(self, msg: bytes) -> bytes:
        return group.hash_to_scalar(msg, self.hash_to_scalar_dst)


SUITES = {mode: Suite(mode) for mode in Mode}


class Evaluation(NamedTuple):
    """The server's answer: evaluated elements in request order, and the batch proof (V/POPRF)."""

    elements: list[bytes]
    proof: bytes | None


@dataclass(frozen=True, eq=False)
class ClientState:
    """What a client keeps between blind and finalize. NEVER send it: the blinds unmask outputs.

    ``tweaked_key`` and ``info`` are set in POPRF mode only.
    """

    mode: Mode
    inputs: list[bytes] = field(repr=False)
    blinds: list[bytes] = field(repr=False)
    blinded_elements: list[bytes] = field(repr=False)
    tweaked_key: bytes | None = field(default=None, repr=False)
    info: bytes | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.inputs)


class BlindResult(NamedTuple):
    """``state`` stays with the client; only ``message`` (the blinded elements) goes on the wire."""

    state: ClientState
    message: list[bytes]


def check_inputs(inputs: object) -> list[bytes]:
    """Inputs as a list of bytes, each short enough for Finalize's I2OSP(len(input), 2)."""
    if isinstance(inputs, bytes | bytearray | memoryview | str):
        raise TypeError("inputs must be a sequence of bytes objects, not a single value")
    out = group.bytes_list(inputs)  # type: ignore[arg-type]
    for i, x in enumerate(out):
        if len(x) > MAX_INPUT_LENGTH:
            raise InvalidInputError(f"input {i}: longer than {MAX_INPUT_LENGTH} bytes")
    return out


def check_info(info: bytes) -> bytes:
    if not isinstance(info, bytes | bytearray | memoryview):
        raise TypeError("info must be bytes")
    if len(info) > MAX_INPUT_LENGTH:
        raise InvalidInputError(f"info longer than {MAX_INPUT_LENGTH} bytes")
    return bytes(info)


def framed_info(info: bytes) -> bytes:
    # framedInfo = "Info" || I2OSP(len(info), 2) || info
    return b"Info" + i2osp(len(info), 2) + info


def finalize_outputs(
    inputs: Sequence[bytes], unblinded: Sequence[bytes], info: bytes | None = None
) -> list[bytes]:
    """The RFC 9497 Finalize hash for each (input, unblinded element) pair.

    OPRF, VOPRF: hashInput = I2OSP(len(input), 2) || input ||
                             I2OSP(len(unblindedElement), 2) || unblindedElement || "Finalize"
    POPRF:       hashInput = I2OSP(len(input), 2) || input || I2OSP(len(info), 2) || info ||
                             I2OSP(len(unblindedElement), 2) || unblindedElement || "Finalize"
    """
    # Everything between input and unblindedElement is the same for the whole batch.
    middle = b"" if info is None else i2osp(len(info), 2) + info
    middle += i2osp(ELEMENT_LENGTH, 2)
    sha512 = hashlib.sha512
    return [
        sha512(len(x).to_bytes(2, "big") + x + middle + n + b"Finalize").digest()
        for x, n in zip(inputs, unblinded, strict=True)
    ]
