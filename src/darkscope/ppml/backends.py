"""Additively homomorphic encryption backends behind one small interface.

Both wrap well-kept libraries; darkscope adds no cryptographic primitive of its own.

- ``bfv`` (default): Microsoft SEAL's BFV scheme through TenSEAL. Batching packs ``N`` integers
  into one ciphertext, so encrypting, adding and decrypting a party's ~500,000 sums takes well
  under a second. The coefficient modulus is SEAL's default for ``N`` (109 bits for N = 4096,
  218 bits for N = 8192), the largest the HomomorphicEncryption.org standard allows for
  128-bit classical security, so the parameters give at least 128-bit security.
- ``paillier``: python-paillier (``phe``), one ciphertext per integer: the classic baseline,
  thousands of times slower. 3072 bits (the default) give about 128-bit security (NIST SP
  800-57); 2048 bits only about 112-bit, which every role refuses (:func:`require_secure`).

A *public* backend (what the aggregator and the parties hold) can encrypt, check and add; only a
backend loaded from the key holder's secret file can decrypt.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from darkscope.errors import DarkscopeError

BACKENDS = ("bfv", "paillier")

# SEAL's default (HE-standard, 128-bit) total coefficient modulus bits per polynomial degree.
HE_STANDARD_128_BITS = {4096: 109, 8192: 218}
# Plaintext primes t ≡ 1 (mod 2N) just below 2^60 (N=8192) and 2^50 (N=4096), so SEAL can
# batch; their primality is checked by the tests with python-paillier's Miller-Rabin.
BFV_PLAIN_MODULUS = {8192: 1152921504606830593, 4096: 1125899906826241}


MIN_SECURITY_BITS = 128
PAILLIER_SECURE_BITS = 3072


class WeakParametersError(DarkscopeError):
    """Encryption parameters below the required 128-bit security level."""


class CiphertextError(DarkscopeError):
    """A ciphertext that does not deserialize or is not valid under the round's public key."""


class Backend(ABC):
    """Encrypt, check, add and (with the secret key) decrypt vectors of signed integers."""

    name: str

    @property
    @abstractmethod
    def plaintext_bound(self) -> int:
        """Largest |total| that decrypts exactly."""

    @property
    @abstractmethod
    def slots(self) -> int:
        """Integers per serialized chunk."""

    @abstractmethod
    def has_secret_key(self) -> bool: ...

    @abstractmethod
    def public_bytes(self) -> bytes: ...

    @abstractmethod
    def secret_bytes(self) -> bytes: ...

    @abstractmethod
    def security(self) -> dict[str, object]:
        """The parameters and the security level they give, for reports and docs."""

    @abstractmethod
    def encrypt(self, values: np.ndarray) -> list[bytes]: ...

    @abstractmethod
    def check(self, chunk: bytes, index: int, count: int) -> None:
        """Raise :class:`CiphertextError` unless ``chunk`` is a valid ciphertext here holding
        exactly ``count`` values (a short chunk would make the homomorphic sum fail later)."""

    @abstractmethod
    def add(self, contributions: Sequence[Sequence[bytes]]) -> list[bytes]:
        """Chunk-wise homomorphic sum of several parties' ciphertext lists."""

    @abstractmethod
    def decrypt(self, chunks: Sequence[bytes], count: int) -> np.ndarray: ...

    @abstractmethod
    def max_chunk_bytes(self) -> int:
        """An upper bound on one serialized ciphertext chunk, to refuse oversized uploads."""

    def n_chunks(self, count: int) -> int:
        return math.ceil(count / self.slots)

    def chunk_counts(self, count: int) -> list[int]:
        """How many values each chunk of a ``count``-value vector holds."""
        return [min(self.slots, count - i * self.slots) for i in range(self.n_chunks(count))]

    def _require_secret(self) -> None:
        if not self.has_secret_key():
            raise DarkscopeError(f"this {self.name} context holds no secret key: only the key "
                                 "holder's secret key file can decrypt")


class BFVBackend(Backend):
    name = "bfv"

    def __init__(self, context: object) -> None:
        import tenseal

        self._ts = tenseal
        self._context = context
        key_data = context.seal_context().data.key_context_data()
        self._degree = key_data.parms().poly_modulus_degree()
        # SEAL stores (t + 1) / 2, the threshold above which slots decode as negative.
        self._plain = 2 * key_data.plain_upper_half_threshold() - 1
        self._max_chunk: int | None = None

    @classmethod
    def generate(cls, poly_modulus_degree: int = 8192) -> BFVBackend:
        import tenseal

        if poly_modulus_degree not in BFV_PLAIN_MODULUS:
            raise DarkscopeError(f"poly modulus degree must be one of "
                                 f"{sorted(BFV_PLAIN_MODULUS)}, got {poly_modulus_degree}")
        context = tenseal.context(tenseal.SCHEME_TYPE.BFV,
                                  poly_modulus_degree=poly_modulus_degree,
                                  plain_modulus=BFV_PLAIN_MODULUS[poly_modulus_degree])
        return cls(context)

    @classmethod
    def from_bytes(cls, data: bytes) -> BFVBackend:
        import tenseal

        try:
            return cls(tenseal.context_from(data))
        except Exception as exc:
            raise CiphertextError(f"not a TenSEAL BFV context ({exc})") from exc

    @property
    def plaintext_bound(self) -> int:
        return (self._plain - 1) // 2

    @property
    def slots(self) -> int:
        return self._degree

    def has_secret_key(self) -> bool:
        return bool(self._context.is_private())

    def public_bytes(self) -> bytes:
        return self._context.serialize(save_public_key=True, save_secret_key=False,
                                       save_galois_keys=False, save_relin_keys=False)

    def secret_bytes(self) -> bytes:
        self._require_secret()
        return self._context.serialize(save_public_key=True, save_secret_key=True,
                                       save_galois_keys=False, save_relin_keys=False)

    def security(self) -> dict[str, object]:
        key_data = self._context.seal_context().data.key_context_data()
        bits = key_data.total_coeff_modulus_bit_count()
        standard = HE_STANDARD_128_BITS.get(self._degree, 0)
        return {"scheme": "BFV (Microsoft SEAL via TenSEAL)", "poly_modulus_degree": self._degree,
                "coeff_modulus_bits": bits, "plain_modulus_bits": self._plain.bit_length(),
                "security_bits": 128 if 0 < bits <= standard else None}

    def encrypt(self, values: np.ndarray) -> list[bytes]:
        flat = np.asarray(values, dtype=np.int64)
        return [self._ts.bfv_vector(self._context, flat[i:i + self._degree].tolist()).serialize()
                for i in range(0, len(flat), self._degree)]

    def _load(self, chunk: bytes, index: int) -> object:
        try:
            return self._ts.bfv_vector_from(self._context, chunk)
        except Exception as exc:
            raise CiphertextError(f"chunk {index}: not a valid BFV ciphertext for this round's "
                                  f"public key ({exc})") from exc

    def check(self, chunk: bytes, index: int, count: int) -> None:
        held = self._load(chunk, index).size()
        if held != count:
            raise CiphertextError(f"chunk {index}: holds {held} values, expected {count}")

    def add(self, contributions: Sequence[Sequence[bytes]]) -> list[bytes]:
        total = []
        for index, chunks in enumerate(zip(*contributions, strict=True)):
            acc = self._load(chunks[0], index)
            for chunk in chunks[1:]:
                acc += self._load(chunk, index)
            total.append(acc.serialize())
        return total

    def max_chunk_bytes(self) -> int:
        # A fresh ciphertext's size varies by a few bytes with SEAL's compression; 5% + 1 KiB
        # covers that (a sum of ciphertexts is the same size).
        if self._max_chunk is None:
            size = len(self.encrypt(np.zeros(self._degree, np.int64))[0])
            self._max_chunk = size * 21 // 20 + 1024
        return self._max_chunk

    def decrypt(self, chunks: Sequence[bytes], count: int) -> np.ndarray:
        self._require_secret()
        parts = [np.asarray(self._load(c, i).decrypt(), dtype=np.int64)
                 for i, c in enumerate(chunks)]
        values = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if len(values) != count:
            raise CiphertextError(f"decrypted {len(values)} values, expected {count}")
        return values


class PaillierBackend(Backend):
    """python-paillier; chunks are fixed-width big-endian ciphertexts, ``slots`` per chunk."""

    name = "paillier"
    _per_chunk = 256

    def __init__(self, public_key: object, private_key: object | None = None) -> None:
        self._public = public_key
        self._private = private_key
        self._width = (public_key.nsquare.bit_length() + 7) // 8

    @classmethod
    def generate(cls, key_bits: int = PAILLIER_SECURE_BITS,
                 allow_insecure: bool = False) -> PaillierBackend:
        """``allow_insecure`` permits 2048-bit keys (112-bit) for local measurements only:
        the key holder, the aggregator and the parties refuse them in a round."""
        from phe import paillier

        if key_bits < 2048 or (key_bits < PAILLIER_SECURE_BITS and not allow_insecure):
            raise WeakParametersError(
                f"Paillier keys of {key_bits} bits give less than {MIN_SECURITY_BITS}-bit "
                f"security; use at least {PAILLIER_SECURE_BITS} bits")
        public, private = paillier.generate_paillier_keypair(n_length=key_bits)
        return cls(public, private)

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierBackend:
        from phe import paillier

        try:
            fields = json.loads(data)
            public = paillier.PaillierPublicKey(int(fields["n"], 16))
            private = None
            if "p" in fields:
                private = paillier.PaillierPrivateKey(public, int(fields["p"], 16),
                                                      int(fields["q"], 16))
        except (ValueError, KeyError, TypeError) as exc:
            raise CiphertextError(f"not a Paillier key ({exc})") from exc
        return cls(public, private)

    @property
    def plaintext_bound(self) -> int:
        return self._public.max_int

    @property
    def slots(self) -> int:
        return self._per_chunk

    def has_secret_key(self) -> bool:
        return self._private is not None

    def public_bytes(self) -> bytes:
        return json.dumps({"n": format(self._public.n, "x")}).encode()

    def secret_bytes(self) -> bytes:
        self._require_secret()
        return json.dumps({"n": format(self._public.n, "x"), "p": format(self._private.p, "x"),
                           "q": format(self._private.q, "x")}).encode()

    def security(self) -> dict[str, object]:
        bits = self._public.n.bit_length()
        level = 128 if bits >= 3072 else 112 if bits >= 2048 else None
        return {"scheme": "Paillier (python-paillier)", "modulus_bits": bits,
                "security_bits": level}

    def encrypt(self, values: np.ndarray) -> list[bytes]:
        numbers = [self._public.encrypt(int(v)).ciphertext() for v in np.asarray(values).tolist()]
        return [b"".join(c.to_bytes(self._width, "big") for c in numbers[i:i + self._per_chunk])
                for i in range(0, len(numbers), self._per_chunk)]

    def _ciphertexts(self, chunk: bytes, index: int) -> list[int]:
        if len(chunk) % self._width or not chunk:
            raise CiphertextError(f"chunk {index}: {len(chunk)} bytes is not a whole number of "
                                  f"{self._width}-byte Paillier ciphertexts")
        values = [int.from_bytes(chunk[i:i + self._width], "big")
                  for i in range(0, len(chunk), self._width)]
        for c in values:
            if not 0 < c < self._public.nsquare or math.gcd(c, self._public.n) != 1:
                raise CiphertextError(f"chunk {index}: value outside the ciphertext group of "
                                      "this round's public key")
        return values

    def check(self, chunk: bytes, index: int, count: int) -> None:
        held = len(self._ciphertexts(chunk, index))
        if held != count:
            raise CiphertextError(f"chunk {index}: holds {held} values, expected {count}")

    def add(self, contributions: Sequence[Sequence[bytes]]) -> list[bytes]:
        from phe import paillier

        total = []
        for index, chunks in enumerate(zip(*contributions, strict=True)):
            columns = [self._ciphertexts(c, index) for c in chunks]
            sums = []
            for parts in zip(*columns, strict=True):
                acc = paillier.EncryptedNumber(self._public, parts[0])
                for part in parts[1:]:
                    acc = acc + paillier.EncryptedNumber(self._public, part)
                sums.append(acc.ciphertext(be_secure=False))
            total.append(b"".join(c.to_bytes(self._width, "big") for c in sums))
        return total

    def max_chunk_bytes(self) -> int:
        return self._width * self._per_chunk

    def decrypt(self, chunks: Sequence[bytes], count: int) -> np.ndarray:
        from phe import paillier

        self._require_secret()
        values = [self._private.decrypt(paillier.EncryptedNumber(self._public, c))
                  for i, chunk in enumerate(chunks) for c in self._ciphertexts(chunk, i)]
        if len(values) != count:
            raise CiphertextError(f"decrypted {len(values)} values, expected {count}")
        return np.asarray(values, dtype=np.int64)


def generate(backend: str, *, poly_modulus_degree: int = 8192,
             paillier_bits: int = PAILLIER_SECURE_BITS, allow_insecure: bool = False) -> Backend:
    """Fresh keys for ``backend``."""
    if backend == "bfv":
        return BFVBackend.generate(poly_modulus_degree)
    if backend == "paillier":
        return PaillierBackend.generate(paillier_bits, allow_insecure)
    raise DarkscopeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def load(backend: str, data: bytes) -> Backend:
    """A backend from public or secret key bytes (secret only if the bytes hold it)."""
    if backend == "bfv":
        return BFVBackend.from_bytes(data)
    if backend == "paillier":
        return PaillierBackend.from_bytes(data)
    raise DarkscopeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def require_secure(backend: Backend, what: str) -> None:
    """Refuse parameters below :data:`MIN_SECURITY_BITS` (every role calls this on a round)."""
    level = backend.security()["security_bits"]
    if not isinstance(level, int) or level < MIN_SECURITY_BITS:
        raise WeakParametersError(
            f"{what}: {backend.name} parameters {backend.security()} give "
            f"{level or 'unknown'}-bit security, below the required {MIN_SECURITY_BITS}-bit")
