"""docs/PROTOCOL.md statements that need no node.

- section 7.5 / 12: ``blinded.json``'s TEST nonce is the randomness ``r`` of RFC 9497's
  ``GenerateProof``: with it and the TEST ``skS`` the proof is recomputed exactly;
- section 4.3: "today" for a birth date is China's date (Asia/Shanghai), whatever the machine's
  time zone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pysodium
import pytest

from tests.protocol import thirdparty_client as tp
from tests.protocol.vectors import ROOT, load, resource_vector

ORDER = 2**252 + 27742317777372353535851937790883648493


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _scalar(data: bytes) -> int:
    return int.from_bytes(data, "little")


def test_the_vector_nonce_is_generate_proofs_r() -> None:
    blinded = load("blinded")
    voprf = blinded["voprf"]
    proof = voprf["proof"]
    resource = resource_vector(blinded["resource_id"], blinded["key_version"])
    sk = bytes.fromhex(resource["voprf_private_key_hex"])
    pk = bytes.fromhex(voprf["oprf_public_key_hex"])
    assert pk == pysodium.crypto_scalarmult_ristretto255_base(sk)
    r = bytes.fromhex(proof["nonce_hex"])
    assert 0 < _scalar(r) < ORDER
    m = bytes.fromhex(proof["composite_m_hex"])
    z = bytes.fromhex(proof["composite_z_hex"])
    c_elems = [bytes.fromhex(i["blinded_element_hex"]) for i in voprf["items"]]
    d_elems = [bytes.fromhex(i["evaluated_element_hex"]) for i in voprf["items"]]
    assert (m, z) == tp.composites(pk, c_elems, d_elems)

    # RFC 9497 section 2.2.1 GenerateProof(k = skS, A = G, B = pkS, C, D) with r = the nonce.
    t2 = pysodium.crypto_scalarmult_ristretto255_base(r)
    t3 = pysodium.crypto_scalarmult_ristretto255(r, m)
    c = tp.hash_to_scalar(b"".join(_lp(x) for x in (pk, m, z, t2, t3)) + b"Challenge")
    s = ((_scalar(r) - _scalar(c) * _scalar(sk)) % ORDER).to_bytes(32, "little")
    assert (c + s).hex() == proof["proof_hex"]


_BIRTH_DATE_CHECK = """
import datetime as dt, json, zoneinfo
from comparator.fields import normalize, resident_id_check_character

def china():
    return dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()

def verdict(day):
    body = "110101" + day.strftime("%Y%m%d") + "001"
    try:
        normalize("cn_resident_id", body + resident_id_check_character(body))
        return "accepted"
    except ValueError as refused:  # comparator.errors.FieldError
        return str(refused)

before = china()
out = {"today": verdict(before), "tomorrow": verdict(before + dt.timedelta(days=1))}
out["stable"] = china() == before
print(json.dumps(out))
"""


@pytest.mark.parametrize("zone", ["Etc/GMT+12", "Etc/GMT-14"], ids=["UTC-12", "UTC+14"])
def test_a_birth_date_is_checked_against_chinas_date_whatever_the_local_zone(zone: str) -> None:
    # Far west of China the local date lags China's for 20 hours a day, far east it leads for 6:
    # a check against the local date would refuse China's today, or accept China's tomorrow.
    env = {**os.environ, "TZ": zone}
    for _ in range(3):  # China's midnight may fall between the check's two readings: again
        ran = subprocess.run(
            [sys.executable, "-c", _BIRTH_DATE_CHECK],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        out = json.loads(ran.stdout.strip().splitlines()[-1])
        if out["stable"]:
            break
    assert out["stable"], "China's date changed during each of three checks"
    assert out["today"] == "accepted"
    assert "birth date out of range" in out["tomorrow"]
