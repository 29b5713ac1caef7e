"""Signing keys and detached CMS signatures, checked with the system openssl."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from preserve.aip.sign import SIGN_OPTIONS, sign_detached, verify_detached
from preserve.errors import SigningError
from preserve.keys import generate_keys, import_keys, key_info, load_signer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
ORG = "Kho Lưu trữ Tỉnh uỷ Hải Dương"
MANIFEST = ("3a1f...  bag-info.txt\n"
            "9c2e...  data/metadata/descriptive/vn-party-archive.xml\n"
            "77d0...  data/submission/Mục lục.xlsx\n").encode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys") / "keys"
    generate_keys(d, ORG)
    return d


def _pair(cn: str = "Lưu trữ Tỉnh uỷ", bits: int = 2048, key=None, days: int = 365):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=2))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    return key, cert


def _write(tmp: Path, key, cert, password: bytes | None = None) -> tuple[Path, Path]:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    kp, cp = tmp / "in-key.pem", tmp / "in-cert.pem"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return kp, cp


def _openssl_verify(tmp: Path, content: bytes, sig: bytes) -> subprocess.CompletedProcess:
    (tmp / "tagmanifest-sha256.txt").write_bytes(content)
    (tmp / "tagmanifest-sha256.txt.p7s").write_bytes(sig)
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                           "-in", "tagmanifest-sha256.txt.p7s", "-content", "tagmanifest-sha256.txt",
                           "-out", "/dev/null"], cwd=tmp, capture_output=True)


def test_generated_keys(keys):
    key_path = keys / "signing-key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    key, cert = load_signer(keys)
    assert key.key_size == 3072
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ORG
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "VN"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment and not ku.key_cert_sign
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    years = (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365.25
    assert 19.9 < years < 20.1
    info = key_info(keys)
    assert info["self_signed"] is True
    assert ORG in info["subject"] and info["subject"] == info["issuer"]
    assert info["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert info["key_mode"] == "0o600"


def test_generate_refuses_to_overwrite(keys):
    with pytest.raises(SigningError, match="already exist"):
        generate_keys(keys, ORG)


def test_openssl_accepts_signature_and_rejects_changed_content(keys, tmp_path):
    key, cert = load_signer(keys)
    assert x509.load_pem_x509_certificate((keys / "signing-cert.pem").read_bytes()) == cert
    sig = sign_detached(MANIFEST, key, cert)
    ok = _openssl_verify(tmp_path, MANIFEST, sig)
    assert ok.returncode == 0, ok.stderr
    changed = bytearray(MANIFEST)
    changed[0] ^= 0x01
    bad = _openssl_verify(tmp_path, bytes(changed), sig)
    assert bad.returncode != 0


def test_signature_embeds_signer_certificate(keys):
    from cryptography.hazmat.primitives.serialization import pkcs7

    assert pkcs7.PKCS7Options.NoCerts not in SIGN_OPTIONS
    key, cert = load_signer(keys)
    certs = pkcs7.load_der_pkcs7_certificates(sign_detached(MANIFEST, key, cert))
    assert certs == [cert]


def test_verify_detached(keys):
    key, cert = load_signer(keys)
    sig = sign_detached(MANIFEST, key, cert)
    good = verify_detached(MANIFEST, sig)
    assert good.ok and ORG in good.signer_subject
    assert verify_detached(MANIFEST, sig, trusted_cert=cert).ok
    assert not verify_detached(MANIFEST + b" ", sig).ok
    assert not verify_detached(MANIFEST, sig[:-10]).ok
    _other_key, other_cert = _pair()
    check = verify_detached(MANIFEST, sig, trusted_cert=other_cert)
    assert not check.ok and "not by the trusted certificate" in check.detail


def test_import_proper_pair(tmp_path):
    key, cert = _pair()
    kp, cp = _write(tmp_path, key, cert)
    keys_dir = tmp_path / "keys"
    import_keys(keys_dir, kp, cp)
    assert stat.S_IMODE((keys_dir / "signing-key.pem").stat().st_mode) == 0o600
    loaded_key, loaded_cert = load_signer(keys_dir)
    assert loaded_cert == cert
    assert loaded_key.private_numbers() == key.private_numbers()
    assert verify_detached(b"x", sign_detached(b"x", loaded_key, loaded_cert), trusted_cert=cert).ok
    with pytest.raises(SigningError, match="already exist"):
        import_keys(keys_dir, kp, cp, replace=False)
    key2, cert2 = _pair()
    import_keys(keys_dir, *_write(tmp_path, key2, cert2))  # replaces, e.g. the key `preserve init` made
    assert load_signer(keys_dir)[1] == cert2
    assert stat.S_IMODE((keys_dir / "signing-key.pem").stat().st_mode) == 0o600


def test_import_refuses_mismatching_pair(tmp_path):
    key, _cert = _pair()
    _other, other_cert = _pair()
    kp, cp = _write(tmp_path, key, other_cert)
    with pytest.raises(SigningError, match="does not belong") as exc:
        import_keys(tmp_path / "keys", kp, cp)
    assert exc.value.hint
    assert not (tmp_path / "keys" / "signing-key.pem").exists()


def test_import_refuses_encrypted_key(tmp_path):
    key, cert = _pair()
    kp, cp = _write(tmp_path, key, cert, password=b"mat-khau")
    with pytest.raises(SigningError, match="encrypted") as exc:
        import_keys(tmp_path / "keys", kp, cp)
    assert "openssl pkey" in exc.value.hint


def test_import_refuses_expired_certificate(tmp_path):
    key, cert = _pair(days=-1)
    kp, cp = _write(tmp_path, key, cert)
    with pytest.raises(SigningError, match="expired"):
        import_keys(tmp_path / "keys", kp, cp)


def test_load_signer_missing(tmp_path):
    with pytest.raises(SigningError, match="no signing key") as exc:
        load_signer(tmp_path / "nothing")
    assert "preserve keys generate" in exc.value.hint
