"""Self-signed generation and the certificate-set check (guide §4.2.4)."""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from psn.certs import check_certificates, generate_self_signed, san_matches
from psn.errors import InputError, Problem
from psn.names import certificate_names

NAMES = certificate_names("example.com", "{service}.{domain}")
NOW = datetime.now(UTC)


# --------------------------------------------------------------------------- helpers


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _issue(
    subject_cn: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    names: list[str] | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    """A certificate signed by `issuer_key` (self-signed when `issuer` is None)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=1))
        .not_valid_after(not_after or NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf_from_dir_ca(cert_dir: Path, **kwargs: object) -> None:
    """Replace server.crt/server.nopass.key with a leaf issued by the directory's own CA."""
    ca_cert, ca_key = _load_cert(cert_dir / "ca.crt"), _load_key(cert_dir / "ca.key")
    key = _new_key()
    kwargs.setdefault("names", NAMES)
    leaf = _issue(NAMES[0], key, ca_cert, ca_key, **kwargs)  # type: ignore[arg-type]
    (cert_dir / "server.crt").write_bytes(_pem(leaf))
    (cert_dir / "server.nopass.key").write_bytes(_key_pem(key))


def _only(problems: list[Problem], file: Path, fragment: str) -> Problem:
    """Assert that `problems` is exactly one problem about `file` containing `fragment`."""
    assert len(problems) == 1, [p.render() for p in problems]
    (problem,) = problems
    assert problem.file == str(file)
    assert fragment in problem.message, problem.render()
    assert problem.fix
    return problem


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    """A freshly generated set in certificates/example.com/."""
    d = tmp_path / "certificates" / "example.com"
    generate_self_signed(d, NAMES)
    return d


@pytest.fixture
def other_dir(tmp_path: Path) -> Path:
    """A second, independent generation for the same names (another CA, same CA name)."""
    d = tmp_path / "other" / "example.com"
    generate_self_signed(d, NAMES)
    return d


# --------------------------------------------------------------------------- generation


def test_generated_set_passes_check(cert_dir: Path) -> None:
    assert check_certificates(cert_dir, NAMES) == []


def test_generated_files_and_modes(tmp_path: Path) -> None:
    d = tmp_path / "certificates" / "example.com"
    written = generate_self_signed(d, NAMES)
    assert sorted(p.name for p in written) == [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.nopass.key",
    ]
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}
    assert mode == {
        "ca.crt": 0o644,
        "ca.key": 0o600,
        "server.crt": 0o644,
        "server.nopass.key": 0o600,
    }
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert b"ENCRYPTED" not in (d / "server.nopass.key").read_bytes()


def test_generated_leaf_profile(cert_dir: Path) -> None:
    leaf = _load_cert(cert_dir / "server.crt")
    ext = leaf.extensions
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NAMES[0]
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == list(NAMES)
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = ext.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    assert leaf.public_key().key_size == 2048  # type: ignore[union-attr]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=825) <= lifetime <= timedelta(days=825, minutes=10)

    ca = _load_cert(cert_dir / "ca.crt")
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    ca_bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_bc.critical and ca_bc.value.ca and ca_bc.value.path_length == 0
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ca_ku.critical and ca_ku.value.key_cert_sign and ca_ku.value.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)
    leaf.verify_directly_issued_by(ca)


def test_regeneration_without_force_refuses_and_changes_nothing(cert_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in cert_dir.iterdir()}
    with pytest.raises(InputError) as err:
        generate_self_signed(cert_dir, NAMES)
    problems = err.value.problems
    assert sorted(Path(p.file or "").name for p in problems) == ["server.crt", "server.nopass.key"]
    assert all("--force" in p.fix for p in problems)
    assert {p.name: p.read_bytes() for p in cert_dir.iterdir()} == before


@pytest.mark.parametrize("survivor", ["server.crt", "server.nopass.key"])
def test_refuses_when_either_server_file_exists(cert_dir: Path, survivor: str) -> None:
    for name in ("server.crt", "server.nopass.key"):
        if name != survivor:
            (cert_dir / name).unlink()
    with pytest.raises(InputError) as err:
        generate_self_signed(cert_dir, NAMES)
    assert [p.file for p in err.value.problems] == [str(cert_dir / survivor)]


def test_refuses_to_overwrite_foreign_ca_without_force(cert_dir: Path) -> None:
    for name in ("server.crt", "server.nopass.key", "ca.key"):
        (cert_dir / name).unlink()
    with pytest.raises(InputError) as err:
        generate_self_signed(cert_dir, NAMES)
    assert [p.file for p in err.value.problems] == [str(cert_dir / "ca.crt")]


def test_force_reissue_keeps_ca(cert_dir: Path) -> None:
    ca_before = (cert_dir / "ca.crt").read_bytes()
    ca_key_before = (cert_dir / "ca.key").read_bytes()
    leaf_before = (cert_dir / "server.crt").read_bytes()
    written = generate_self_signed(cert_dir, NAMES, force=True)
    assert [p.name for p in written] == ["server.nopass.key", "server.crt"]
    assert (cert_dir / "ca.crt").read_bytes() == ca_before
    assert (cert_dir / "ca.key").read_bytes() == ca_key_before
    assert (cert_dir / "server.crt").read_bytes() != leaf_before
    _load_cert(cert_dir / "server.crt").verify_directly_issued_by(_load_cert(cert_dir / "ca.crt"))
    assert check_certificates(cert_dir, NAMES) == []


@pytest.mark.parametrize(
    ("names", "days", "fragment"),
    [
        ([], 30, "no host names"),
        (["not a name"], 30, "not a valid host name"),
        (NAMES, 826, "825"),
        (NAMES, 0, "825"),
    ],
)
def test_generation_rejects_bad_input(
    tmp_path: Path, names: list[str], days: int, fragment: str
) -> None:
    with pytest.raises(InputError) as err:
        generate_self_signed(tmp_path / "c", names, days=days)
    assert any(fragment in p.message for p in err.value.problems)
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- check: files


def test_missing_directory(tmp_path: Path) -> None:
    d = tmp_path / "certificates" / "example.com"
    _only(check_certificates(d, NAMES), d, "certificates/<DEFAULT_DOMAIN>/")


@pytest.mark.parametrize("name", ["server.crt", "server.nopass.key", "ca.crt"])
def test_missing_file(cert_dir: Path, name: str) -> None:
    (cert_dir / name).unlink()
    problem = _only(check_certificates(cert_dir, NAMES), cert_dir / name, "is missing")
    assert str(cert_dir / name) in problem.message
    assert "certificates/<DEFAULT_DOMAIN>/" in problem.message
    assert "gen_self_signed_cert.sh example.com" in problem.fix


def test_all_files_missing_one_problem_each(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    d.mkdir()
    problems = check_certificates(d, NAMES)
    assert sorted(p.file or "" for p in problems) == sorted(
        str(d / n) for n in ("ca.crt", "server.crt", "server.nopass.key")
    )
    assert all("is missing" in p.message for p in problems)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("server.crt", "not a PEM certificate"),
        ("ca.crt", "not a PEM certificate"),
        ("server.nopass.key", "not a readable PEM private key"),
    ],
)
def test_garbage_content(cert_dir: Path, name: str, fragment: str) -> None:
    (cert_dir / name).write_bytes(b"hello, this is not PEM\n")
    _only(check_certificates(cert_dir, NAMES), cert_dir / name, fragment)


def test_corrupt_pem_body(cert_dir: Path) -> None:
    pem = (cert_dir / "server.crt").read_text().splitlines()
    pem[3] = "A" * len(pem[3])
    (cert_dir / "server.crt").write_text("\n".join(pem) + "\n")
    _only(check_certificates(cert_dir, NAMES), cert_dir / "server.crt", "not a PEM certificate")


def test_empty_file(cert_dir: Path) -> None:
    (cert_dir / "ca.crt").write_bytes(b"\n")
    _only(check_certificates(cert_dir, NAMES), cert_dir / "ca.crt", "is empty")


def test_key_and_cert_swapped(cert_dir: Path) -> None:
    crt, key = (cert_dir / "server.crt").read_bytes(), (cert_dir / "server.nopass.key").read_bytes()
    (cert_dir / "server.crt").write_bytes(key)
    (cert_dir / "server.nopass.key").write_bytes(crt)
    problems = check_certificates(cert_dir, NAMES)
    by_file = {Path(p.file or "").name: p.message for p in problems}
    assert by_file.keys() == {"server.crt", "server.nopass.key"}
    assert "it holds a private key" in by_file["server.crt"]
    assert "it holds a certificate" in by_file["server.nopass.key"]


def test_der_certificate(cert_dir: Path) -> None:
    der = _load_cert(cert_dir / "ca.crt").public_bytes(serialization.Encoding.DER)
    (cert_dir / "ca.crt").write_bytes(der)
    problem = _only(check_certificates(cert_dir, NAMES), cert_dir / "ca.crt", "DER-encoded")
    assert "openssl x509 -inform der" in problem.fix


def test_encrypted_key(cert_dir: Path) -> None:
    key = _load_key(cert_dir / "server.nopass.key")
    (cert_dir / "server.nopass.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    problem = _only(
        check_certificates(cert_dir, NAMES), cert_dir / "server.nopass.key", "is encrypted"
    )
    assert "openssl pkey" in problem.fix


# --------------------------------------------------------------------------- check: content


def test_wrong_key(cert_dir: Path, other_dir: Path) -> None:
    shutil.copy(other_dir / "server.nopass.key", cert_dir / "server.nopass.key")
    problem = _only(
        check_certificates(cert_dir, NAMES),
        cert_dir / "server.nopass.key",
        "does not match server.crt",
    )
    assert "private key that belongs to server.crt" in problem.fix


def test_leaf_not_first_in_chain_file(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    d.mkdir()
    root_key, inter_key, leaf_key = _new_key(), _new_key(), _new_key()
    root = _issue("Root", root_key, None, root_key, ca=True)
    inter = _issue("Inter", inter_key, root, root_key, ca=True)
    leaf = _issue(NAMES[0], leaf_key, inter, inter_key, names=NAMES)
    (d / "server.crt").write_bytes(_pem(inter) + _pem(leaf))
    (d / "server.nopass.key").write_bytes(_key_pem(leaf_key))
    (d / "ca.crt").write_bytes(_pem(root))
    problems = check_certificates(d, NAMES)
    assert any(
        p.file == str(d / "server.crt") and "not the first one" in p.message for p in problems
    ), [p.render() for p in problems]


def test_missing_names_listed_in_one_problem(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    generate_self_signed(d, NAMES[:2])
    problem = _only(check_certificates(d, NAMES), d / "server.crt", "does not cover")
    missing = NAMES[2:]
    assert f"{len(missing)} required host name(s): {', '.join(missing)}" in problem.message
    assert NAMES[1] == "admin.example.com"
    assert NAMES[1] not in problem.message


def test_wildcard_san_covers_one_label(cert_dir: Path) -> None:
    _leaf_from_dir_ca(cert_dir, names=["*.example.com"])
    required = ["mail.example.com", "IMAP.Example.COM", "a.b.example.com", "example.com"]
    problem = _only(check_certificates(cert_dir, required), cert_dir / "server.crt", "cover")
    assert "2 required host name(s): a.b.example.com, example.com" in problem.message


def test_no_san_extension(cert_dir: Path) -> None:
    _leaf_from_dir_ca(cert_dir, names=None)
    problem = _only(check_certificates(cert_dir, NAMES), cert_dir / "server.crt", "no subjectAlt")
    assert f"{len(NAMES)} required host name(s)" in problem.message


@pytest.mark.parametrize(
    ("pattern", "hostname", "expected"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("MAIL.example.com", "mail.EXAMPLE.com.", True),
        ("*.example.com", "mail.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.mail.example.com", False),
        ("*.com", "example.com", False),
        ("m*.example.com", "mail.example.com", False),
        ("mail.*.com", "mail.example.com", False),
        ("*.*.example.com", "a.b.example.com", False),
        ("other.example.com", "mail.example.com", False),
    ],
)
def test_san_matches(pattern: str, hostname: str, expected: bool) -> None:
    assert san_matches(pattern, hostname) is expected


def test_client_auth_only_certificate(cert_dir: Path) -> None:
    _leaf_from_dir_ca(cert_dir, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    _only(check_certificates(cert_dir, NAMES), cert_dir / "server.crt", "lacks serverAuth")


# --------------------------------------------------------------------------- check: dates


def test_expired_leaf_reported_once(cert_dir: Path) -> None:
    end = NOW - timedelta(days=3)
    _leaf_from_dir_ca(cert_dir, not_before=NOW - timedelta(days=40), not_after=end)
    problem = _only(check_certificates(cert_dir, NAMES), cert_dir / "server.crt", "expired on")
    assert f"{end:%Y-%m-%d}" in problem.message
    assert problem.severity == "error"


def test_not_yet_valid_leaf(cert_dir: Path) -> None:
    start = NOW + timedelta(days=2)
    _leaf_from_dir_ca(cert_dir, not_before=start, not_after=NOW + timedelta(days=300))
    problem = _only(check_certificates(cert_dir, NAMES), cert_dir / "server.crt", "not valid yet")
    assert f"{start:%Y-%m-%d}" in problem.message
    assert problem.severity == "error"


def test_near_expiry_is_a_warning(cert_dir: Path) -> None:
    end = NOW + timedelta(days=10)
    _leaf_from_dir_ca(cert_dir, not_after=end)
    problem = _only(check_certificates(cert_dir, NAMES), cert_dir / "server.crt", "expires soon")
    assert problem.severity == "warning"
    assert f"{end:%Y-%m-%d}" in problem.message
    assert check_certificates(cert_dir, NAMES, warn_days=5) == []


def test_check_time_is_injectable(cert_dir: Path) -> None:
    later = NOW + timedelta(days=900)
    _only(check_certificates(cert_dir, NAMES, now=later), cert_dir / "server.crt", "expired on")


def test_expired_ca(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    d.mkdir()
    ca_key, leaf_key = _new_key(), _new_key()
    ca = _issue("Old CA", ca_key, None, ca_key, ca=True, not_after=NOW - timedelta(days=1))
    leaf = _issue(NAMES[0], leaf_key, ca, ca_key, names=NAMES)
    (d / "server.crt").write_bytes(_pem(leaf))
    (d / "server.nopass.key").write_bytes(_key_pem(leaf_key))
    (d / "ca.crt").write_bytes(_pem(ca))
    _only(check_certificates(d, NAMES), d / "ca.crt", "'Old CA') expired on")


# --------------------------------------------------------------------------- check: chain


def test_ca_from_another_generation(cert_dir: Path, other_dir: Path) -> None:
    # Same CA name, different key: only the signature tells them apart.
    shutil.copy(other_dir / "ca.crt", cert_dir / "ca.crt")
    _only(check_certificates(cert_dir, NAMES), cert_dir / "ca.crt", "signature does not verify")


def test_unrelated_ca(cert_dir: Path) -> None:
    key = _new_key()
    (cert_dir / "ca.crt").write_bytes(_pem(_issue("Unrelated CA", key, None, key, ca=True)))
    _only(check_certificates(cert_dir, NAMES), cert_dir / "ca.crt", "is in neither")


def _three_level(d: Path) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    d.mkdir(parents=True)
    root_key, inter_key, leaf_key = _new_key(), _new_key(), _new_key()
    root = _issue("Root", root_key, None, root_key, ca=True)
    inter = _issue("Inter", inter_key, root, root_key, ca=True)
    leaf = _issue(NAMES[0], leaf_key, inter, inter_key, names=NAMES)
    (d / "server.nopass.key").write_bytes(_key_pem(leaf_key))
    return root, inter, leaf


def test_intermediate_in_server_crt_passes(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    root, inter, leaf = _three_level(d)
    other_key = _new_key()
    other_root = _issue("Other root", other_key, None, other_key, ca=True)
    (d / "server.crt").write_bytes(_pem(leaf) + _pem(inter))
    (d / "ca.crt").write_bytes(_pem(other_root) + _pem(root))
    assert check_certificates(d, NAMES) == []


def test_missing_intermediate(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    root, _inter, leaf = _three_level(d)
    (d / "server.crt").write_bytes(_pem(leaf))
    (d / "ca.crt").write_bytes(_pem(root))
    problem = _only(check_certificates(d, NAMES), d / "ca.crt", "CN=Inter")
    assert "missing intermediate" in problem.message
    assert "append the intermediate" in problem.fix


def test_root_missing_from_ca_crt(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    root, inter, leaf = _three_level(d)
    (d / "server.crt").write_bytes(_pem(leaf) + _pem(inter) + _pem(root))
    key = _new_key()
    (d / "ca.crt").write_bytes(_pem(_issue("Unrelated", key, None, key, ca=True)))
    _only(check_certificates(d, NAMES), d / "ca.crt", "ends at the self-signed 'CN=Root'")


def test_non_ca_cannot_issue(tmp_path: Path) -> None:
    d = tmp_path / "example.com"
    d.mkdir()
    fake_key, leaf_key = _new_key(), _new_key()
    fake_ca = _issue("Not a CA", fake_key, None, fake_key, ca=False)
    leaf = _issue(NAMES[0], leaf_key, fake_ca, fake_key, names=NAMES)
    (d / "server.crt").write_bytes(_pem(leaf))
    (d / "server.nopass.key").write_bytes(_key_pem(leaf_key))
    (d / "ca.crt").write_bytes(_pem(fake_ca))
    _only(check_certificates(d, NAMES), d / "ca.crt", "is in neither")
