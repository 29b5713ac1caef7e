"""The repository's signing key and certificate (keys_dir/signing-key.pem, keys_dir/signing-cert.pem).

The key is PEM PKCS#8, unencrypted, created with mode 0600 from the start (never chmod-ed afterwards); the
certificate is PEM. `generate_keys` makes an RSA-3072 key and a self-signed certificate for the archive;
`import_keys` takes a key and certificate issued elsewhere (e.g. by a government CA) after checking they match.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from preserve.atomic import fsync_dir, write_bytes
from preserve.errors import SigningError

KEY_FILE = "signing-key.pem"
CERT_FILE = "signing-cert.pem"
KEY_MODE = 0o600
RSA_BITS = 3072
VALIDITY_YEARS = 20
MIN_RSA_BITS = 2048

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def key_paths(keys_dir: Path) -> tuple[Path, Path]:
    keys_dir = Path(keys_dir)
    return keys_dir / KEY_FILE, keys_dir / CERT_FILE


def _key_pem(key: SigningKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _prepare_dir(keys_dir: Path, replace: bool) -> tuple[Path, Path]:
    key_path, cert_path = key_paths(keys_dir)
    if not replace and (key_path.exists() or cert_path.exists()):
        raise SigningError(f"signing keys already exist in {keys_dir}",
                           hint="see them with `preserve keys show`; move them away first to make new ones")
    Path(keys_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    return key_path, cert_path


def _store(keys_dir: Path, key: SigningKey, cert: x509.Certificate, replace: bool) -> tuple[Path, Path]:
    key_path, cert_path = _prepare_dir(keys_dir, replace)
    write_bytes(key_path, _key_pem(key), mode=KEY_MODE)  # created 0600 by os.open, never chmod-ed
    write_bytes(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    fsync_dir(keys_dir)
    return key_path, cert_path


def _retire(keys_dir: Path) -> None:
    """Keep a replaced pair (old AIPs carry their certificate, but the key's history is worth keeping)."""
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S")
    for p in key_paths(keys_dir):
        if p.exists():
            os.rename(p, p.with_name(f"{p.name}.{stamp}"))


def generate_keys(keys_dir: Path, organisation: str, *, replace: bool = False) -> tuple[Path, Path]:
    """An RSA-3072 key and a 20-year self-signed certificate (CN = O = organisation, C = VN).
    With replace=True the old pair is kept beside it as signing-key.pem.<date> / signing-cert.pem.<date>."""
    organisation = " ".join(str(organisation).split())
    if not organisation:
        raise SigningError("the organisation name is empty", hint="give the archive's name, e.g. "
                           "\"Kho lưu trữ Tỉnh uỷ Hải Dương\"")
    if replace:
        _retire(Path(keys_dir))
    _prepare_dir(Path(keys_dir), replace=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]),
        x509.NameAttribute(NameOID.COMMON_NAME, organisation[:64]),
    ])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=round(365.25 * VALIDITY_YEARS)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _store(Path(keys_dir), key, cert, replace=False)


def _load_key(data: bytes, source: str) -> SigningKey:
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key)
    if data.lstrip().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY") or b"Proc-Type: 4,ENCRYPTED" in data:
        raise _encrypted(source)
    last: Exception | None = None
    for load in loaders:
        try:
            key = load(data, password=None)
            break
        except TypeError as exc:  # "Password was not given but private key is encrypted"
            raise _encrypted(source) from exc
        except ValueError as exc:
            last = exc
    else:
        raise SigningError(f"{source} is not a private key in PEM or DER form ({last})",
                           hint="give the private key file (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise SigningError(f"{source} is an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are needed",
                           hint="use a longer key, or `preserve keys generate` for an RSA-3072 one")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise SigningError(f"{source} is a {type(key).__name__}; CMS signing here needs an RSA or EC key",
                           hint="use an RSA (≥ 2048 bits) or EC key")
    return key


def _encrypted(source: str) -> SigningError:
    return SigningError(f"{source} is encrypted with a passphrase; the repository signs unattended and needs "
                        "an unencrypted key (kept readable by its owner only)",
                        hint=f"decrypt it first: openssl pkey -in {source} -out key-plain.pem "
                             "(then import key-plain.pem and delete it)")


def _load_cert(data: bytes, source: str) -> x509.Certificate:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SigningError(f"{source} is not an X.509 certificate in PEM or DER form ({exc})",
                           hint="give the certificate file (-----BEGIN CERTIFICATE-----)") from exc


def _check_pair(key: SigningKey, cert: x509.Certificate, key_source: str, cert_source: str) -> None:
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise SigningError(f"the private key {key_source} does not belong to the certificate {cert_source}",
                           hint="give the certificate issued for this key (compare `openssl pkey -in KEY -pubout` "
                                "with `openssl x509 -in CERT -pubkey -noout`)")


def import_keys(keys_dir: Path, key_file: Path, cert_file: Path, *, replace: bool = True) -> tuple[Path, Path]:
    """Check and install a key and its certificate. Refuses encrypted, mismatching or expired ones.

    An installed pair (e.g. the one `preserve init` generated) is replaced atomically unless replace=False.
    Signatures already made stay verifiable: each embeds its signer's certificate.
    """
    key_file, cert_file = Path(key_file), Path(cert_file)
    for path in (key_file, cert_file):
        if not path.is_file():
            raise SigningError(f"{path} not found", hint="give the paths of the key and certificate files")
    key = _load_key(key_file.read_bytes(), str(key_file))
    cert = _load_cert(cert_file.read_bytes(), str(cert_file))
    _check_pair(key, cert, str(key_file), str(cert_file))
    if cert.not_valid_after_utc < dt.datetime.now(dt.timezone.utc):
        raise SigningError(f"the certificate {cert_file} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                           hint="renew it, or make a new pair with `preserve keys generate`")
    return _store(Path(keys_dir), key, cert, replace=replace)


def load_signer(keys_dir: Path) -> tuple[SigningKey, x509.Certificate]:
    """(private key, certificate) for signing; SigningError saying what to do if missing or broken."""
    key_path, cert_path = key_paths(keys_dir)
    missing = [p for p in (key_path, cert_path) if not p.is_file()]
    if missing:
        raise SigningError(f"no signing {'key' if key_path in missing else 'certificate'} at "
                           f"{', '.join(str(p) for p in missing)}",
                           hint="create them with `preserve keys generate`, or install the archive's own with "
                                "`preserve keys import KEY CERT`")
    key = _load_key(key_path.read_bytes(), str(key_path))
    cert = _load_cert(cert_path.read_bytes(), str(cert_path))
    _check_pair(key, cert, str(key_path), str(cert_path))
    return key, cert


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_info(keys_dir: Path) -> dict:
    """What `preserve keys show` prints about the installed certificate."""
    key, cert = load_signer(keys_dir)
    key_path, cert_path = key_paths(keys_dir)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "self_signed": _self_signed(cert),
        "key_type": "RSA" if isinstance(key, rsa.RSAPrivateKey) else f"EC {key.curve.name}",
        "key_bits": key.key_size,
        "key_path": str(key_path),
        "cert_path": str(cert_path),
        "key_mode": oct(os.stat(key_path).st_mode & 0o777),
    }
