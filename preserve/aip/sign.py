"""Detached CMS (PKCS#7) signatures over an AIP's tag manifest.

`sign_detached` makes DER SignedData, SHA-256, binary mode (no MIME canonicalisation), content detached, with
the signer's certificate embedded, so that a signature can be checked decades later from the AIP alone:

    openssl cms -verify -binary -inform DER -noverify -in tagmanifest-sha256.txt.p7s \\
        -content tagmanifest-sha256.txt -out /dev/null

`verify_detached` runs exactly that with the system openssl (cryptography has no PKCS#7 verification API).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from preserve.errors import SigningError

SIGNATURE_SUFFIX = ".p7s"
SIGN_OPTIONS = (pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary)  # never NoCerts
OPENSSL_TIMEOUT = 120


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    detail: str
    signer_subject: str | None = None


def sign_detached(data: bytes, key, cert: x509.Certificate) -> bytes:
    """DER CMS SignedData over `data` (detached, binary, SHA-256, signer certificate embedded)."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(data)
        .add_signer(cert, key, hashes.SHA256())
        .sign(Encoding.DER, list(SIGN_OPTIONS))
    )


def openssl_path() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise SigningError("openssl is not installed; signatures cannot be checked",
                           hint="install it (apt-get install openssl)")
    return path


def verify_detached(data: bytes, signature: bytes, trusted_cert: x509.Certificate | None = None) -> SignatureCheck:
    """Check a detached DER CMS signature over `data`.

    The signature must be intact and match the data. The signer's certificate is not checked against a CA
    chain (-noverify): an archive's self-signed certificate is normal. With `trusted_cert`, the embedded
    signer certificate must moreover be that very certificate. Raises SigningError only if openssl is missing.
    """
    with tempfile.TemporaryDirectory(prefix="preserve-verify-") as tmp:
        sig_path, data_path, signer_path = Path(tmp, "sig.p7s"), Path(tmp, "data"), Path(tmp, "signer.pem")
        sig_path.write_bytes(signature)
        data_path.write_bytes(data)
        cmd = [openssl_path(), "cms", "-verify", "-binary", "-inform", "DER", "-noverify",
               "-in", str(sig_path), "-content", str(data_path), "-out", str(Path(tmp, "out")),
               "-signer", str(signer_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return SignatureCheck(False, f"openssl cms -verify did not finish within {OPENSSL_TIMEOUT} s")
        messages = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            first = next((line for line in messages.splitlines() if line.strip()), "")
            return SignatureCheck(False, f"signature does not verify (openssl exit {proc.returncode}): {first}")
        signer = _first_cert(signer_path)
    subject = signer.subject.rfc4514_string() if signer is not None else None
    if trusted_cert is not None:
        if signer is None or signer.fingerprint(hashes.SHA256()) != trusted_cert.fingerprint(hashes.SHA256()):
            return SignatureCheck(False, f"signature is intact but signed by {subject or 'an unknown signer'}, "
                                         f"not by the trusted certificate {trusted_cert.subject.rfc4514_string()}",
                                  subject)
        return SignatureCheck(True, "signature verifies and was made with the trusted certificate", subject)
    return SignatureCheck(True, messages or "CMS Verification successful", subject)


def _first_cert(path: Path) -> x509.Certificate | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    return certs[0] if certs else None
