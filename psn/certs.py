"""TLS certificates of an installation (guide §4.2.4): generate a self-signed set, check a set.

The set lives in `certificates/<DEFAULT_DOMAIN>/`:
`server.crt` (leaf first, then intermediates, no root), `server.nopass.key` (unencrypted PEM key)
and `ca.crt` (every trusted CA certificate). The self-signed generator also keeps `ca.key` there
so that re-issuing the server certificate keeps the CA that clients already trust.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from psn.errors import InputError, Problem
from psn.names import default_domain, is_valid_hostname

SERVER_CERT = "server.crt"
SERVER_KEY = "server.nopass.key"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"

# Apple platforms reject TLS server certificates valid for longer than 825 days.
MAX_LEAF_DAYS = 825
CA_DAYS = 3650
RSA_BITS = 2048
# Backdate notBefore so that clients whose clock is slightly behind accept a fresh certificate.
_CLOCK_SKEW = timedelta(minutes=5)
_MAX_CHAIN_DEPTH = 8
_GUIDE_LAYOUT = "certificates/<DEFAULT_DOMAIN>/ (guide §4.2.4)"


# --------------------------------------------------------------------------- generation


def generate_self_signed(
    cert_dir: Path, names: list[str], *, force: bool = False, days: int = MAX_LEAF_DAYS
) -> list[Path]:
    """Write a local CA and a server certificate for `names` into `cert_dir`.

    Writes `server.crt`, `server.nopass.key` (0600) and, unless a matching `ca.key`/`ca.crt`
    pair is already there, `ca.crt` and `ca.key` (0600). The CN is `names[0]`, the SANs are
    exactly `names`. Returns the files written.

    Raises `InputError` (nothing written) for invalid names or `days`, or when the server
    files (or a CA that is not ours) already exist and `force` is false.
    """
    _validate_request(names, days)
    files = {n: cert_dir / n for n in (SERVER_CERT, SERVER_KEY, CA_CERT, CA_KEY)}
    ca = _load_reusable_ca(files[CA_CERT], files[CA_KEY])

    to_replace = [files[SERVER_CERT], files[SERVER_KEY]]
    if ca is None:
        to_replace += [files[CA_CERT], files[CA_KEY]]
    existing = [p for p in to_replace if p.exists()]
    if existing and not force:
        raise InputError(
            "Certificate files already exist",
            [
                Problem(
                    message=f"{p.name} already exists and would be replaced",
                    fix="pass --force to replace it, or remove it first",
                    file=str(p),
                )
                for p in existing
            ],
        )

    if not cert_dir.is_dir():
        cert_dir.mkdir(parents=True)
        cert_dir.chmod(0o700)

    now = datetime.now(UTC)
    written: list[Path] = []
    if ca is None:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        ca_cert = _build_ca(ca_key, default_domain(names[0].removeprefix("*.")), now)
        _write(files[CA_KEY], _key_pem(ca_key), 0o600)
        _write(files[CA_CERT], ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        written += [files[CA_KEY], files[CA_CERT]]
    else:
        ca_cert, ca_key = ca

    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    leaf = _build_leaf(key, names, ca_cert, ca_key, now, days)
    _write(files[SERVER_KEY], _key_pem(key), 0o600)
    # The guide's server.crt holds the leaf and intermediates but not the root; our CA is the
    # root, so the chain file is the leaf alone.
    _write(files[SERVER_CERT], leaf.public_bytes(serialization.Encoding.PEM), 0o644)
    written += [files[SERVER_KEY], files[SERVER_CERT]]
    return written


def _validate_request(names: Sequence[str], days: int) -> None:
    problems: list[Problem] = []
    if not names:
        problems.append(Problem(message="no host names given for the certificate"))
    problems += [
        Problem(
            message="not a valid host name for a certificate",
            fix="use a fully qualified DNS name such as mail.example.com",
            value=n,
        )
        for n in names
        if not is_valid_hostname(n.removeprefix("*."))
    ]
    if not 1 <= days <= MAX_LEAF_DAYS:
        problems.append(
            Problem(
                message=f"certificate validity must be 1 to {MAX_LEAF_DAYS} days "
                "(Apple clients reject longer ones)",
                value=str(days),
            )
        )
    if problems:
        raise InputError("Cannot generate a self-signed certificate", problems)


def _load_reusable_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None:
    """The existing CA, if `ca.key` and the first cert of `ca.crt` match and stay valid."""
    try:
        ca_cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(ca_key, rsa.RSAPrivateKey) or _spki(ca_key) != _spki(ca_cert):
        return None
    if ca_cert.not_valid_after_utc < datetime.now(UTC) + timedelta(days=1):
        return None
    return ca_cert, ca_key


def _build_ca(key: rsa.RSAPrivateKey, domain: str, now: datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PSN"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"PSN self-signed CA for {domain}"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _build_leaf(
    key: rsa.RSAPrivateKey,
    names: Sequence[str],
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    now: datetime,
    days: int,
) -> x509.Certificate:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically; the file never exists, even briefly, with wider permissions."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- checking


def check_certificates(
    cert_dir: Path,
    required_names: list[str],
    *,
    now: datetime | None = None,
    warn_days: int = 30,
) -> list[Problem]:
    """Every problem with the certificate set in `cert_dir`, errors and warnings together.

    `required_names` are the host names the server certificate must cover
    (`psn.names.certificate_names`). An empty list means the set is usable.
    """
    now = now or datetime.now(UTC)
    regen = _regen_hint(required_names)
    if not cert_dir.is_dir():
        return [
            Problem(
                message=f"certificate directory is missing; expected {SERVER_CERT}, "
                f"{SERVER_KEY} and {CA_CERT} in {_GUIDE_LAYOUT}",
                fix=f"create it and put the three files there, or run {regen}",
                file=str(cert_dir),
            )
        ]

    problems: list[Problem] = []
    chain = _load_certs(cert_dir / SERVER_CERT, "the server certificate", regen, problems)
    cas = _load_certs(cert_dir / CA_CERT, "the CA certificate(s)", regen, problems)
    key = _load_key(cert_dir / SERVER_KEY, regen, problems)
    if not chain:
        return problems

    leaf = chain[0]
    if key is not None:
        problems += _check_key_match(cert_dir, key, chain, regen)
    problems += _check_names(cert_dir / SERVER_CERT, leaf, required_names, regen)
    problems += _check_usage(cert_dir / SERVER_CERT, leaf)
    problems += _check_validity(cert_dir / SERVER_CERT, leaf, now, warn_days, regen)
    if cas:
        path, chain_problem = _build_path(leaf, chain[1:], cas, cert_dir)
        if chain_problem is not None:
            problems.append(chain_problem)
        for cert, file in path:
            problems += _check_validity(file, cert, now, warn_days, regen)
    return problems


def san_matches(pattern: str, hostname: str) -> bool:
    """True if the SAN DNS name `pattern` covers `hostname` (RFC 6125 §6.4.3).

    A `*` is honoured only as the whole leftmost label and stands for exactly one label;
    `*.com`-style wildcards over a single label match nothing. Case-insensitive.
    """
    pattern = pattern.lower().rstrip(".")
    hostname = hostname.lower().rstrip(".")
    if not pattern.startswith("*."):
        return "*" not in pattern and pattern == hostname
    base = pattern[2:]
    first, _, rest = hostname.partition(".")
    return "*" not in base and "." in base and bool(first) and rest == base


def _regen_hint(required_names: Sequence[str]) -> str:
    domain = required_names[0] if required_names else "<domain>"
    return f"./gen_self_signed_cert.sh {domain} --force (self-signed; clients must trust ca.crt)"


def _load_certs(
    path: Path, what: str, regen: str, problems: list[Problem]
) -> list[x509.Certificate]:
    data = _read(path, what, regen, problems)
    if data is None:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        pass
    if b"-----BEGIN" not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            pass
        else:
            problems.append(
                Problem(
                    message=f"{path.name} is DER-encoded; nginx needs PEM",
                    fix=f"convert it: openssl x509 -inform der -in {path} -out {path}",
                    file=str(path),
                )
            )
            return []
    hint = " (it holds a private key)" if b"PRIVATE KEY-----" in data else ""
    problems.append(
        Problem(
            message=f"{path.name} is not a PEM certificate file{hint}: "
            "no readable '-----BEGIN CERTIFICATE-----' block",
            fix=f"put {what} in PEM form into {path}, or run {regen}",
            file=str(path),
        )
    )
    return []


def _load_key(path: Path, regen: str, problems: list[Problem]) -> PrivateKeyTypes | None:
    data = _read(path, "the private key of server.crt", regen, problems)
    if data is None:
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problems.append(
            Problem(
                message=f"{path.name} is encrypted; the guide requires a key without passphrase",
                fix=f"remove the passphrase: openssl pkey -in {path} -out {path}.plain "
                f"&& mv {path}.plain {path} && chmod 600 {path}",
                file=str(path),
            )
        )
    except (ValueError, UnsupportedAlgorithm):
        hint = " (it holds a certificate)" if b"BEGIN CERTIFICATE" in data else ""
        problems.append(
            Problem(
                message=f"{path.name} is not a readable PEM private key{hint}",
                fix=f"put the private key that belongs to server.crt into {path}, or run {regen}",
                file=str(path),
            )
        )
    return None


def _read(path: Path, what: str, regen: str, problems: list[Problem]) -> bytes | None:
    if not path.is_file():
        problems.append(
            Problem(
                message=f"{path.name} is missing; expected {what} at {path} "
                f"(layout {_GUIDE_LAYOUT})",
                fix=f"put {what} into {path}, or run {regen}",
                file=str(path),
            )
        )
        return None
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append(
            Problem(
                message=f"{path.name} cannot be read: {e.strerror}",
                fix="make it readable by the user running the installer",
                file=str(path),
            )
        )
        return None
    if not data.strip():
        problems.append(
            Problem(
                message=f"{path.name} is empty",
                fix=f"put {what} into {path}, or run {regen}",
                file=str(path),
            )
        )
        return None
    return data


def _spki(obj: PrivateKeyTypes | x509.Certificate) -> bytes:
    public = obj.public_key()
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_match(
    cert_dir: Path, key: PrivateKeyTypes, chain: list[x509.Certificate], regen: str
) -> list[Problem]:
    key_path, cert_path = cert_dir / SERVER_KEY, cert_dir / SERVER_CERT
    spki = _spki(key)
    if spki == _spki(chain[0]):
        return []
    if any(spki == _spki(c) for c in chain[1:]):
        return [
            Problem(
                message=f"{cert_path.name}: the server certificate is not the first one in "
                "the file; nginx takes the first certificate as the server's",
                fix=f"reorder {cert_path}: server certificate first, then intermediates",
                file=str(cert_path),
            )
        ]
    return [
        Problem(
            message=f"{key_path.name} does not match {cert_path.name} "
            f"(the key belongs to another certificate; server.crt is for "
            f"{_subject_cn(chain[0])!r})",
            fix=f"put the private key that belongs to server.crt into {key_path}, or run {regen}",
            file=str(key_path),
        )
    ]


def _subject_cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def _check_names(
    path: Path, leaf: x509.Certificate, required: Sequence[str], regen: str
) -> list[Problem]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
        no_san = ""
    except x509.ExtensionNotFound:
        dns_names = []
        no_san = "; it has no subjectAltName extension and clients ignore the CN"
    missing = [n for n in required if not any(san_matches(p, n) for p in dns_names)]
    if not missing:
        return []
    return [
        Problem(
            message=f"{path.name} does not cover {len(missing)} required host name(s): "
            f"{', '.join(missing)}{no_san}",
            fix="get a certificate whose subjectAltName lists these names "
            f"(a *.domain wildcard covers one label), or run {regen}",
            file=str(path),
            value=", ".join(dns_names) if dns_names else None,
        )
    ]


def _check_usage(path: Path, leaf: x509.Certificate) -> list[Problem]:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    if ExtendedKeyUsageOID.SERVER_AUTH in eku:
        return []
    return [
        Problem(
            message=f"{path.name} is not allowed for TLS servers: its extendedKeyUsage "
            "lacks serverAuth, so clients will reject it",
            fix="request a certificate with extendedKeyUsage serverAuth",
            file=str(path),
        )
    ]


def _check_validity(
    path: Path, cert: x509.Certificate, now: datetime, warn_days: int, regen: str
) -> list[Problem]:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    who = f"{path.name} ({_subject_cn(cert)!r})"
    renew = f"install a renewed certificate, or run {regen}"
    if now < start:
        return [
            Problem(
                message=f"{who} is not valid yet: valid from {start:%Y-%m-%d %H:%M} UTC",
                fix="check the clock of this machine, or " + renew,
                file=str(path),
            )
        ]
    if now > end:
        return [
            Problem(
                message=f"{who} expired on {end:%Y-%m-%d %H:%M} UTC",
                fix=renew,
                file=str(path),
            )
        ]
    if end - now < timedelta(days=warn_days):
        return [
            Problem(
                message=f"{who} expires soon, on {end:%Y-%m-%d %H:%M} UTC",
                fix=renew + "; then run ./deploy_psn.sh <inventory> -t proxy",
                file=str(path),
                severity="warning",
            )
        ]
    return []


def _build_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    cert_dir: Path,
) -> tuple[list[tuple[x509.Certificate, Path]], Problem | None]:
    """Follow signatures from the leaf to a certificate of `ca.crt`.

    Returns the issuers found (with the file they came from) and the problem, if any.
    `cryptography.x509.verification` is not used: its WebPKI profile rejects common private
    CAs (e.g. one made by `openssl req -x509`, which has no keyUsage). Validity dates are
    checked separately, so an expired certificate is reported once, as expired.
    """
    server_path, ca_path = cert_dir / SERVER_CERT, cert_dir / CA_CERT
    pool = [(c, ca_path) for c in anchors] + [(c, server_path) for c in intermediates]
    path: list[tuple[x509.Certificate, Path]] = []
    current = leaf
    fix = (
        f"append the intermediate certificates to {server_path} (after the server "
        f"certificate) and put the root CA that issued them into {ca_path}"
    )
    for _ in range(_MAX_CHAIN_DEPTH):
        if current in anchors:
            return path, None
        named = [
            (c, f) for c, f in pool if c.subject == current.issuer and c != current and _may_sign(c)
        ]
        issuer = next(((c, f) for c, f in named if _signed_by(current, c)), None)
        if issuer is None:
            return path, _chain_problem(current, leaf, bool(named), ca_path, fix)
        path.append(issuer)
        if issuer[1] == ca_path:
            return path, None
        current = issuer[0]
    return path, Problem(
        message=f"the chain of {SERVER_CERT} is longer than {_MAX_CHAIN_DEPTH} certificates "
        "or loops",
        fix=fix,
        file=str(server_path),
    )


def _chain_problem(
    current: x509.Certificate, leaf: x509.Certificate, had_named: bool, ca_path: Path, fix: str
) -> Problem:
    who = "the server certificate" if current is leaf else f"intermediate {_subject_cn(current)!r}"
    issuer = current.issuer.rfc4514_string()
    if had_named:
        message = (
            f"{ca_path.name} does not verify {SERVER_CERT}: {who} names issuer {issuer!r}, "
            "but its signature does not verify with any certificate of that name "
            "(ca.crt is from another CA, e.g. an older generation)"
        )
    elif current.issuer == current.subject:
        message = (
            f"{ca_path.name} does not verify {SERVER_CERT}: the chain ends at the "
            f"self-signed {issuer!r}, which is not in {ca_path.name}"
        )
    else:
        message = (
            f"{ca_path.name} does not verify {SERVER_CERT}: the issuer {issuer!r} of {who} "
            f"is in neither {SERVER_CERT} nor {ca_path.name} (missing intermediate or wrong CA)"
        )
    return Problem(message=message, fix=fix, file=str(ca_path))


def _may_sign(cert: x509.Certificate) -> bool:
    """False only for certificates that declare themselves non-CA (v1 roots still count)."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return True


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True
