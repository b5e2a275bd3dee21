import numpy as np
import pytest

from darkscope.errors import DarkscopeError
from darkscope.ppml import backends


@pytest.fixture(scope="module")
def bfv():
    return backends.generate("bfv", poly_modulus_degree=4096)


def test_bfv_sum_decrypts_exactly_with_signs_and_large_values(bfv):
    public = backends.load("bfv", bfv.public_bytes())
    rng = np.random.default_rng(0)
    bound = bfv.plaintext_bound // 3
    parts = [rng.integers(-bound, bound, size=9000) for _ in range(3)]
    total = public.add([public.encrypt(p) for p in parts])
    assert np.array_equal(bfv.decrypt(total, 9000), parts[0] + parts[1] + parts[2])


def test_bfv_public_context_cannot_decrypt(bfv):
    public = backends.load("bfv", bfv.public_bytes())
    assert not public.has_secret_key()
    assert bfv.has_secret_key()
    with pytest.raises(DarkscopeError, match="no secret key"):
        public.decrypt(public.encrypt(np.arange(5)), 5)
    with pytest.raises(DarkscopeError, match="no secret key"):
        public.secret_bytes()


def test_bfv_parameters_meet_128_bit_standard(bfv):
    security = bfv.security()
    assert security["poly_modulus_degree"] == 4096
    assert security["coeff_modulus_bits"] <= backends.HE_STANDARD_128_BITS[4096]
    assert security["security_bits"] == 128


def test_bfv_rejects_garbage_and_truncated_ciphertexts(bfv):
    chunk = bfv.encrypt(np.arange(10))[0]
    with pytest.raises(backends.CiphertextError, match="chunk 4: not a valid BFV"):
        bfv.check(chunk[: len(chunk) // 2], 4, 10)
    with pytest.raises(backends.CiphertextError, match="chunk 0"):
        bfv.check(b"\x00" * 200, 0, 10)
    bfv.check(chunk, 0, 10)
    with pytest.raises(backends.CiphertextError, match="chunk 2: holds 10 values, expected 11"):
        bfv.check(chunk, 2, 11)


def test_paillier_roundtrip_and_validation():
    keys = backends.generate("paillier")
    public = backends.load("paillier", keys.public_bytes())
    assert not public.has_secret_key()
    assert keys.security() == {"scheme": "Paillier (python-paillier)", "modulus_bits": 3072,
                               "security_bits": 128}
    backends.require_secure(public, "test")
    a, b = np.array([5, -7, 2**40]), np.array([-5, 9, 1])
    total = public.add([public.encrypt(a), public.encrypt(b)])
    assert keys.decrypt(total, 3).tolist() == (a + b).tolist()
    with pytest.raises(backends.CiphertextError, match="whole number"):
        public.check(total[0][:-1], 0, 3)
    with pytest.raises(backends.CiphertextError, match="outside the ciphertext group"):
        public.check(b"\xff" * len(total[0]), 0, 3)
    public.check(total[0], 0, 3)
    with pytest.raises(backends.CiphertextError, match="chunk 0: holds 3 values, expected 4"):
        public.check(total[0], 0, 4)


def test_paillier_below_128_bit_needs_an_explicit_flag_and_is_refused_in_rounds():
    with pytest.raises(backends.WeakParametersError, match="2048 bits give less than 128-bit"):
        backends.generate("paillier", paillier_bits=2048)
    weak = backends.generate("paillier", paillier_bits=2048, allow_insecure=True)
    assert weak.security()["security_bits"] == 112
    with pytest.raises(backends.WeakParametersError, match="112-bit security, below the required"):
        backends.require_secure(backends.load("paillier", weak.public_bytes()), "round r")
    with pytest.raises(backends.WeakParametersError):
        backends.generate("paillier", paillier_bits=1024, allow_insecure=True)
