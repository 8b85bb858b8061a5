"""RFC 9497 oblivious pseudorandom functions, ciphersuite ristretto255-SHA512, all three modes.

::

    client (requester)                                  server (provider node, key skS)
    ------------------                                  -------------------------------
    blind, blindedElement = Blind(input[, info])
      blindedElement = blind * HashToGroup(input)
                            ---- blindedElement ---->
                                                        evaluatedElement = k * blindedElement
                                                          OPRF, VOPRF: k = skS
                                                          POPRF: k = (skS + H(info))^-1
                                                        proof = GenerateProof(...)  (V/POPRF)
                            <--- evaluatedElement, proof ----
    output = Finalize(input, blind, evaluatedElement, proof[, info])
      VerifyProof(...)                     (V/POPRF; VerifyError if it fails)
      N = blind^-1 * evaluatedElement
      output = Hash(input, [info,] N, "Finalize")  ==  server.evaluate(input[, info])

Everything works on batches: one proof covers a whole batch (at most MAX_VERIFIABLE_BATCH items),
and large batches are split across the shared worker pool (``comparator.oprf.parallel``).

Roles (mode fixed by the class): ``OprfServer(sk)``, ``VoprfServer(sk)``, ``PoprfServer(sk)``,
``OprfClient()``, ``VoprfClient(pk)``, ``PoprfClient(pk)``. Keys: ``generate_key_pair(mode)``,
``derive_key_pair(seed, info, mode)``. Wire values are bytes: elements of ELEMENT_LENGTH, proofs of
PROOF_LENGTH, outputs of OUTPUT_LENGTH. Deterministic blinds and nonces exist only in the test-only
module ``comparator.oprf._testing``.
"""

from comparator.errors import DeriveKeyPairError
from comparator.oprf.client import OprfClient, PoprfClient, VoprfClient
from comparator.oprf.keys import derive_key_pair, generate_key_pair
from comparator.oprf.parallel import set_workers
from comparator.oprf.server import OprfServer, PoprfServer, VoprfServer
from comparator.oprf.suite import (
    ELEMENT_LENGTH,
    MAX_VERIFIABLE_BATCH,
    OUTPUT_LENGTH,
    PROOF_LENGTH,
    SCALAR_LENGTH,
    SUITE_ID,
    BlindResult,
    ClientState,
    Evaluation,
    Mode,
)

__all__ = [
    "ELEMENT_LENGTH",
    "MAX_VERIFIABLE_BATCH",
    "OUTPUT_LENGTH",
    "PROOF_LENGTH",
    "SCALAR_LENGTH",
    "SUITE_ID",
    "BlindResult",
    "ClientState",
    "DeriveKeyPairError",
    "Evaluation",
    "Mode",
    "OprfClient",
    "OprfServer",
    "PoprfClient",
    "PoprfServer",
    "VoprfClient",
    "VoprfServer",
    "derive_key_pair",
    "generate_key_pair",
    "set_workers",
]
