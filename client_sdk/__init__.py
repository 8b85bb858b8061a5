"""bidui client SDK: what a requesting department imports to compare its records with a provider's.

::

    from client_sdk import ComparisonClient, Credentials

    credentials = Credentials.from_files("pki/ca.pem", "pki/dept.pem", "pki/dept.key")
    with ComparisonClient("node.example:50051", credentials) as client:
        result = client.compare(
            "residents",
            [{"id_number": "510502198001010011", "name": "张三"}],
            key="id_number+name",
            mode="blinded",
            purpose="minimum living allowance eligibility check",
        )
    result.matched          # indexes of the matched records
    result[0].status        # "matched" | "not_matched" | "error"

Only match bits come back; the provider's data never leaves its node. Where the provider allows
it, ``client.verify(resource, records, key="id_number", fields=["name", "phone"], purpose=...)``
verifies fields (核验): each record is ``not_found`` (库无), ``consistent`` (一致) or
``inconsistent`` (不一致) with its ``mismatched_fields``; and ``compare(..., answer="count")``
returns only how many records matched (:class:`CountResult`).

A conditional resource is compared under a grant: ``client.apply(...)`` returns the pending
:class:`Application`; once the provider's operator approves it, ``client.application(id).grant``
is the :class:`Grant` (``compare(..., grant_id=grant.id)`` names it). A department makes its own
key and certificate request with :func:`make_key_and_request` and has the node's operator sign it.
A result in doubt is reported within 3 working days: ``client.report_discrepancy(comparison_id,
positions, description)`` (:func:`locate_records` finds the positions of input rows), and
``client.discrepancy(id)`` is the :class:`DiscrepancyReport` with the provider's answer.
"""

from client_sdk.client import ComparisonClient, ComparisonMode, ProgressCallback, RetryPolicy
from client_sdk.comparison.results import ComparisonResult, MatchStatus, RecordResult
from client_sdk.comparison.verification_results import (
    CountResult,
    RecordVerification,
    VerificationResult,
    VerifyStatus,
)
from client_sdk.connection.credentials import Credentials
from client_sdk.errors import (
    AuthenticationError,
    BiduiError,
    CredentialsError,
    CsvInputError,
    CsvOutputError,
    DeadlineExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    ProofVerificationError,
    QuotaExceededError,
    ResourceNotFoundError,
    ServiceError,
    ServiceUnavailableError,
)
from client_sdk.governance.discrepancies import DiscrepancyReport, DiscrepancyStatus, locate_records
from client_sdk.governance.enrolment import make_key_and_request
from client_sdk.governance.sharing import Application, ApplicationStatus, Grant

__all__ = [
    "Application",
    "ApplicationStatus",
    "AuthenticationError",
    "BiduiError",
    "ComparisonClient",
    "ComparisonMode",
    "ComparisonResult",
    "CountResult",
    "Credentials",
    "CredentialsError",
    "CsvInputError",
    "CsvOutputError",
    "DeadlineExceededError",
    "DiscrepancyReport",
    "DiscrepancyStatus",
    "Grant",
    "InvalidRequestError",
    "MatchStatus",
    "PermissionDeniedError",
    "ProgressCallback",
    "ProofVerificationError",
    "QuotaExceededError",
    "RecordResult",
    "RecordVerification",
    "ResourceNotFoundError",
    "RetryPolicy",
    "ServiceError",
    "ServiceUnavailableError",
    "VerificationResult",
    "VerifyStatus",
    "locate_records",
    "make_key_and_request",
]
