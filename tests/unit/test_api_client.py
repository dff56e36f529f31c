"""psn.api_client and `deploy_psn users|groups|domains|tenants` against a local HTTPS server
that records requests and answers like the PSN API (the real API is tested end to end in
tests/e2e/suite/test_suite_admin.py)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from psn import api_client
from psn.certs import generate_self_signed
from psn.cli import run
from psn.errors import ApiError, InputError
from psn.inventory import yaml_round_trip

ROOT = Path(__file__).resolve().parents[2]
HOST = "psnapi.example.com"


class Recorder(BaseHTTPRequestHandler):
    """Answers each request from `replies[(method, path)]` and records it."""

    replies: ClassVar[dict[tuple[str, str], tuple[int, object]]] = {}
    seen: ClassVar[list[dict[str, object]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append(
            {"method": self.command, "path": self.path, "body": body,
             "auth": self.headers.get("Authorization")}
        )  # fmt: skip
        status, data = self.replies.get((self.command, self.path.split("?")[0]), (404, None))
        raw = b"" if data is None else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(port, CA file) of a local HTTPS API with a certificate for psnapi.example.com."""
    certs = tmp_path / "certs" / "example.com"
    generate_self_signed(certs, [HOST])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.crt", certs / "server.nopass.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Recorder.replies, Recorder.seen = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://{HOST}:{server.server_address[1]}", certs / "ca.crt"
    server.shutdown()


def _client(api: tuple[str, Path]) -> api_client.ApiClient:
    url, ca = api
    return api_client.ApiClient(url, "psnapi", "s3cret", api_client.tls_context(ca), "127.0.0.1")


def test_request_sends_basic_auth_json_and_query(api) -> None:
    Recorder.replies[("GET", "/api/v1/users")] = (200, [{"address": "a@example.com"}])
    data = _client(api).request("GET", "/users", tenant="acme", q=None)
    assert data == [{"address": "a@example.com"}]
    seen = Recorder.seen[0]
    assert seen["path"] == "/api/v1/users?tenant=acme"
    assert seen["auth"] == "Basic cHNuYXBpOnMzY3JldA=="  # psnapi:s3cret


def test_api_errors_carry_status_and_detail(api) -> None:
    Recorder.replies[("POST", "/api/v1/users")] = (409, {"detail": "a@example.com exists"})
    with pytest.raises(ApiError, match=r"409 a@example\.com exists") as caught:
        _client(api).request("POST", "/users", {"address": "a@example.com"})
    assert caught.value.status == 409 and caught.value.exit_code == 7
    errors = [{"loc": ["body", "quota"], "msg": "use 500M or 2G"}]
    Recorder.replies[("PATCH", "/api/v1/users/a%40example.com")] = (422, {"detail": errors})
    client = _client(api)
    with pytest.raises(ApiError, match="422 quota: use 500M or 2G"):
        client.request("PATCH", client.item("users", "a@example.com"), {"quota": "lots"})


def test_the_certificate_is_checked(api, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_self_signed(other, ["other.example.org"])
    url, _ = api
    client = api_client.ApiClient(
        url, "u", "p", api_client.tls_context(other / "ca.crt"), "127.0.0.1"
    )
    with pytest.raises(ApiError, match="no answer"):
        client.request("GET", "/me")


def _inventory(tmp_path: Path, password: str = "AdminPass1") -> Path:
    yaml = yaml_round_trip()
    doc = yaml.load((ROOT / "inventory" / "hosts.yml").read_text())
    doc["all"]["vars"]["setup"]["external_domain"] = "example.com"
    doc["all"]["vars"]["setup"]["domain_module"] = "{service}.{domain}"
    doc["all"]["vars"]["passwords"]["psnapi_admin_user"] = password
    path = tmp_path / "hosts.yml"
    with path.open("w") as handle:
        yaml.dump(doc, handle)
    return path


def test_client_for_takes_host_ca_and_admin_password_from_the_inventory(tmp_path: Path) -> None:
    certs = tmp_path / "certificates"
    generate_self_signed(certs / "example.com", [HOST])
    client = api_client.client_for(
        inventory=_inventory(tmp_path), certs_root=certs, url=None, user="psnapi",
        password=None, address="", ca_file=None,
    )  # fmt: skip
    assert (client.url, client.user, client.password) == (f"https://{HOST}", "psnapi", "AdminPass1")


def test_client_for_without_a_password_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        api_client.client_for(
            inventory=_inventory(tmp_path), certs_root=tmp_path, url=None,
            user="admin@example.com", password=None, address="", ca_file=None,
        )  # fmt: skip
    assert "PSN_API_PASSWORD" in caught.value.problems[0].fix


def test_users_csv_rows_become_api_bodies(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(
        "address,display_name,password,quota,aliases,enabled,tenant_admin\n"
        "ann@example.com,Ann Lee,Passw0rd!,2G,ann.lee@example.com lee@example.com,yes,\n"
        "bob@example.com,,,,,no,true\n"
    )
    rows = api_client.read_users_csv(path)
    assert rows == [
        (2, {"address": "ann@example.com", "display_name": "Ann Lee", "password": "Passw0rd!",
             "quota": "2G", "aliases": ["ann.lee@example.com", "lee@example.com"],
             "enabled": True}),
        (3, {"address": "bob@example.com", "aliases": [], "enabled": False, "tenant_admin": True}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("mail,name\nx@example.com,X\n", "bad header", 1),
        ("address,enabled\nx@example.com,maybe\n", "bad enabled", 2),
        ("address,display_name\n,Nobody\n", "no address", 2),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path: Path, text: str, message: str, line: int) -> None:
    path = tmp_path / "users.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        api_client.read_users_csv(path)
    assert caught.value.problems[0].location == f"{path}:{line}"


def test_import_adds_skips_existing_and_reports_failures(api, tmp_path: Path, monkeypatch, capsys):
    url, ca = api
    monkeypatch.setenv("PSN_API_PASSWORD", "s3cret")
    Recorder.replies[("POST", "/api/v1/users")] = (409, {"detail": "exists"})
    path = tmp_path / "users.csv"
    path.write_text("address,display_name,password\nann@example.com,Ann,Passw0rd!\n")
    args = ["--skip-checksum", "users", "--api-url", url, "--ca", str(ca), "--address", "127.0.0.1"]
    assert run([*args, "import", str(path)]) == 0
    assert "exists (skipped)" in capsys.readouterr().err
    Recorder.replies[("POST", "/api/v1/users")] = (422, {"detail": "bad quota"})
    assert run([*args, "import", str(path)]) == 7
    assert "bad quota" in capsys.readouterr().err
    Recorder.replies[("POST", "/api/v1/users")] = (409, {"detail": "exists"})
    Recorder.replies[("PATCH", "/api/v1/users/ann%40example.com")] = (200, {"address": "ann@"})
    assert run([*args, "import", "--update", str(path)]) == 0
    patch = Recorder.seen[-1]
    assert patch["body"] == {"display_name": "Ann", "password": "Passw0rd!"}


def test_delete_without_a_terminal_needs_yes(api, monkeypatch, capsys) -> None:
    url, ca = api
    monkeypatch.setenv("PSN_API_PASSWORD", "s3cret")
    args = ["--skip-checksum", "users", "--api-url", url, "--ca", str(ca), "--address", "127.0.0.1"]
    assert run([*args, "delete", "ann@example.com"]) == 2
    assert Recorder.seen == []
    Recorder.replies[("DELETE", "/api/v1/users/ann%40example.com")] = (204, None)
    assert run([*args, "delete", "--yes", "ann@example.com"]) == 0
    assert Recorder.seen[0]["method"] == "DELETE"


def test_list_passes_its_filters_as_the_api_query(api, monkeypatch, capsys) -> None:
    url, ca = api
    monkeypatch.setenv("PSN_API_PASSWORD", "s3cret")
    args = ["--skip-checksum", "users", "--api-url", url, "--ca", str(ca), "--address", "127.0.0.1"]
    Recorder.replies[("GET", "/api/v1/users")] = (200, [{"address": "ann@example.com"}])
    assert run([*args, "list", "--domain", "example.com", "--search", "ann", "--json"]) == 0
    assert Recorder.seen[0]["path"] == "/api/v1/users?domain=example.com&q=ann"
    assert json.loads(capsys.readouterr().out) == [{"address": "ann@example.com"}]


def test_tables_show_quotas_in_binary_units(api, monkeypatch, capsys) -> None:
    url, ca = api
    monkeypatch.setenv("PSN_API_PASSWORD", "s3cret")
    args = ["--skip-checksum", "users", "--api-url", url, "--ca", str(ca), "--address", "127.0.0.1"]
    users = [
        {"address": "a@example.com", "quota": 0},
        {"address": "b@example.com", "quota": 3 << 29},
    ]
    Recorder.replies[("GET", "/api/v1/users")] = (200, users)
    assert run([*args, "list"]) == 0
    out = capsys.readouterr().out
    assert "unlimited" in out and "1.5 GiB" in out
