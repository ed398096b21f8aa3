"""Email notifications against a real SMTP server (aiosmtpd on a free port): one-time login links
(service and `passgate one-time-access-token --email`), "new sign-in from a new device" notices,
STARTTLS and implicit TLS, SMTP authentication, and failures that never fail a sign-in."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.accounts.known_devices import DEVICE_COOKIE
from gateway.accounts.notifications import MailFailed
from gateway.cli import main as cli
from gateway.core.errors import InvalidInput, SettingsInvalid
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from tests.conftest import free_port
from tests.web_client import USER_AGENT, WebClient, audit_rows

# Plain AUTH is fine here: the server listens on 127.0.0.1 only (TLS has its own tests below).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SMTP_USER = "passgate-mailer"
SMTP_PASSWORD = "smtp-Pa55word-never-logged"


class Inbox:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} mails arrived"
        return self.messages


def _check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == SMTP_USER.encode()
        and data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


class MailServer:
    def __init__(self, **smtp_options: Any) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **smtp_options
        )

    def settings(self, tls: str = "none", **extra: str) -> dict[str, str]:
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": str(self.port),
            "smtp_from": "Passgate <auth@example.com>",
            "smtp_tls": tls,
            **extra,
        }


@pytest.fixture
def smtp_server() -> Iterator[MailServer]:
    """A plain SMTP server that requires AUTH (allowed without TLS: it is on 127.0.0.1)."""
    server = MailServer(authenticator=_check_login, auth_require_tls=False, auth_required=True)
    server.controller.start()
    yield server
    server.controller.stop()


def _authenticated(server: MailServer) -> dict[str, str]:
    return server.settings(smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD)


@pytest.fixture
def mailing(make_settings: Callable[..., Settings], smtp_server: MailServer) -> Iterator[Services]:
    built = build_services(make_settings(db_provider="sqlite", **_authenticated(smtp_server)))
    yield built
    asyncio.run(built.close())


# --- settings --------------------------------------------------------------------------------


def test_notifications_are_off_by_default(make_settings: Callable[..., Settings]) -> None:
    built = build_services(make_settings())
    try:
        assert built.notifications.enabled is False
    finally:
        asyncio.run(built.close())


def test_smtp_host_without_a_sender_is_a_settings_error(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsInvalid, match="SMTP_FROM"):
        make_settings(smtp_host="mail.example.com")


def test_smtp_user_without_a_password_is_a_settings_error(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsInvalid, match="SMTP_USER and SMTP_PASSWORD"):
        make_settings(smtp_host="mail.example.com", smtp_from="a@example.com", smtp_user="u")


def test_smtp_password_is_not_in_the_settings_repr(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        smtp_host="mail.example.com",
        smtp_from="a@example.com",
        smtp_user=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
    )
    assert SMTP_PASSWORD not in repr(settings)


# --- one-time login links ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_emailed_login_link_arrives_and_signs_the_user_in(
    mailing: Services, smtp_server: MailServer
) -> None:
    user = mailing.users.create_user("alice", "alice@example.com", "Alice")
    code = mailing.login_codes.issue("alice")
    url = f"{mailing.settings.app_url}/lc/{code}"
    mailing.notifications.send_login_link(user, url)
    (message,) = smtp_server.inbox.wait()
    assert smtp_server.inbox.recipients == [["alice@example.com"]]
    assert message["To"] == "alice@example.com" and "sign-in link" in message["Subject"]
    linked = re.search(r"https://auth\.example\.com/lc/(\w+)", _body(message))
    assert linked is not None and linked.group(1) == code
    async with WebClient(mailing) as client:
        response = await client.post_form("/login/code", {"code": linked.group(1), "via": "link"})
    assert response.status_code == 303 and client.session_cookie()


def test_login_link_to_a_user_without_email_is_refused(mailing: Services) -> None:
    user = mailing.users.create_user("bob")
    with pytest.raises(InvalidInput, match="no email address"):
        mailing.notifications.send_login_link(user, "https://auth.example.com/lc/X")


def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str]) -> None:
    base = {
        "app_url": "https://auth.example.com",
        "data_dir": str(tmp_path / "cli-data"),
        "encryption_key": "test-encryption-key-0123456789",
        "db_provider": "sqlite",
    }
    for name, value in {**base, **values}.items():
        monkeypatch.setenv(name.upper(), value)


def test_cli_emails_the_one_time_link_instead_of_printing_it(
    smtp_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_env(monkeypatch, tmp_path, _authenticated(smtp_server))
    assert cli.main(["users", "add", "alice", "--email", "alice@example.com"]) == 0
    capsys.readouterr()
    assert cli.main(["one-time-access-token", "alice", "--email", "--minutes", "15"]) == 0
    out, err = capsys.readouterr()
    (message,) = smtp_server.inbox.wait()
    body = _body(message)
    assert "/lc/" in body and "15 minutes" in body
    assert "/lc/" not in out + err and "emailed to alice" in err
    code = re.search(r"/lc/(\w+)", body)
    assert code is not None and code.group(1) not in out + err


def test_cli_email_without_smtp_fails_clearly_and_issues_no_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli_env(monkeypatch, tmp_path, {})
    assert cli.main(["users", "add", "alice", "--email", "alice@example.com"]) == 0
    assert cli.main(["one-time-access-token", "alice", "--email"]) == 2
    assert "SMTP_HOST" in capsys.readouterr().err
    built = build_services(cli.load_settings())
    try:
        assert built.db.fetchone("SELECT COUNT(*) FROM login_codes") == (0,)
    finally:
        asyncio.run(built.close())


# --- new-device notices ----------------------------------------------------------------------


@pytest.fixture
async def alice_device(mailing: Services) -> AsyncIterator[WebClient]:
    """Alice set up the instance from this browser (her first, known device)."""
    async with WebClient(mailing, "198.51.100.7") as client:
        await client.set_up("alice", "alice@example.com")
        yield client


@pytest.mark.anyio
async def test_first_device_of_an_account_gets_no_notice(
    mailing: Services, smtp_server: MailServer, alice_device: WebClient
) -> None:
    assert audit_rows(mailing, "sign_in")[-1]["details"]["new_device"] is False
    assert smtp_server.inbox.messages == []


@pytest.mark.anyio
async def test_sign_in_from_a_known_device_gets_no_notice(
    mailing: Services, smtp_server: MailServer, alice_device: WebClient
) -> None:
    assert (await alice_device.sign_in()).status_code == 200
    assert audit_rows(mailing, "sign_in")[-1]["details"]["new_device"] is False
    assert smtp_server.inbox.messages == []


@pytest.mark.anyio
async def test_sign_in_from_a_new_device_sends_a_notice(
    mailing: Services, smtp_server: MailServer, alice_device: WebClient
) -> None:
    async with WebClient(mailing, "203.0.113.9", alice_device.auth) as other_browser:
        assert (await other_browser.sign_in()).status_code == 200
    (message,) = smtp_server.inbox.wait()
    assert message["To"] == "alice@example.com" and "New sign-in" in message["Subject"]
    body = _body(message)
    assert "203.0.113.9" in body and USER_AGENT in body and "passkey" in body
    assert audit_rows(mailing, "sign_in")[-1]["details"]["new_device"] is True


@pytest.mark.anyio
async def test_device_cookie_is_host_only_httponly_secure_and_stored_hashed(
    mailing: Services, alice_device: WebClient
) -> None:
    response = await alice_device.sign_in()
    header = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(DEVICE_COOKIE + "=")
    )
    attributes = header.lower()
    assert "httponly" in attributes and "secure" in attributes and "samesite=lax" in attributes
    assert "domain=" not in attributes
    value = alice_device.http.cookies.get(DEVICE_COOKIE)
    assert value and len(value) >= 40
    assert value not in str(mailing.db.fetchall("SELECT * FROM known_devices"))


@pytest.mark.anyio
async def test_unreachable_mail_server_does_not_fail_a_new_device_sign_in(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    closed = {"smtp_host": "127.0.0.1", "smtp_port": str(free_port()), "smtp_from": "a@b.example"}
    built = build_services(make_settings(db_provider="sqlite", smtp_tls="none", **closed))
    try:
        async with WebClient(built, "198.51.100.7") as first:
            await first.set_up("alice", "alice@example.com")
            with caplog.at_level(logging.WARNING, logger="passgate.notifications"):
                async with WebClient(built, "203.0.113.9", first.auth) as second:
                    response = await second.sign_in()
                    assert response.status_code == 200 and second.session_cookie()
        assert "new-device notice to user" in caplog.text and "not sent" in caplog.text
    finally:
        await built.close()


# --- transport security, authentication and secrets -----------------------------------------------


def test_wrong_smtp_password_is_a_clear_error_without_the_password(
    make_settings: Callable[..., Settings], smtp_server: MailServer
) -> None:
    wrong = smtp_server.settings(smtp_user=SMTP_USER, smtp_password="Wrong-password-123")
    built = build_services(make_settings(**wrong))
    try:
        user = built.users.create_user("alice", "alice@example.com")
        with pytest.raises(MailFailed, match="SMTPAuthenticationError") as failed:
            built.notifications.send_login_link(user, "https://auth.example.com/lc/X")
        assert "Wrong-password-123" not in str(failed.value)
        assert smtp_server.inbox.messages == []
    finally:
        asyncio.run(built.close())


@pytest.mark.anyio
async def test_smtp_password_link_and_code_never_reach_the_logs(
    mailing: Services, smtp_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = mailing.users.create_user("alice", "alice@example.com")
    code = mailing.login_codes.issue("alice")
    mailing.notifications.send_login_link(user, f"{mailing.settings.app_url}/lc/{code}")
    smtp_server.inbox.wait()
    passgate_lines = [r.getMessage() for r in caplog.records if r.name.startswith("passgate")]
    assert any("mail sent" in line for line in passgate_lines)
    # Everything but the test's own SMTP server (aiosmtpd logs what it receives at DEBUG).
    everything = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert SMTP_PASSWORD not in everything and code not in everything


def _certificate_authority(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA and a 127.0.0.1 server certificate; returns (CA file, server context)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passgate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_mail_goes_over_verified_tls(
    mode: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ca_file, context = _certificate_authority(tmp_path)
    # Passgate verifies the server against the system's CAs; this test's CA stands in for them.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    options: dict[str, Any] = {
        "authenticator": _check_login,
        "auth_required": True,
    }
    if mode == "starttls":
        options.update(tls_context=context, require_starttls=True)
    else:
        # The session is TLS from the first byte, which aiosmtpd's AUTH check cannot see.
        options.update(ssl_context=context, auth_require_tls=False)
    server = MailServer(**options)
    server.controller.start()
    built = build_services(make_settings(**server.settings(mode, **_tls_auth())))
    try:
        user = built.users.create_user("alice", "alice@example.com")
        built.notifications.send_login_link(user, "https://auth.example.com/lc/ABC")
        (message,) = server.inbox.wait()
        assert "/lc/ABC" in _body(message)
    finally:
        server.controller.stop()
        asyncio.run(built.close())


def _tls_auth() -> dict[str, str]:
    return {"smtp_user": SMTP_USER, "smtp_password": SMTP_PASSWORD}


def test_untrusted_tls_certificate_is_refused(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    _, context = _certificate_authority(tmp_path)
    server = MailServer(tls_context=context, require_starttls=True)
    server.controller.start()
    built = build_services(make_settings(**server.settings("starttls")))
    try:
        user = built.users.create_user("alice", "alice@example.com")
        with pytest.raises(MailFailed, match=r"CERTIFICATE_VERIFY_FAILED|SSLCertVerification"):
            built.notifications.send_login_link(user, "https://auth.example.com/lc/ABC")
        assert server.inbox.messages == []
    finally:
        server.controller.stop()
        asyncio.run(built.close())


def test_starttls_refused_by_the_server_fails_instead_of_sending_in_clear(
    make_settings: Callable[..., Settings], smtp_server: MailServer
) -> None:
    built = build_services(make_settings(**smtp_server.settings("starttls", **_tls_auth())))
    try:
        user = built.users.create_user("alice", "alice@example.com")
        with pytest.raises(MailFailed, match="STARTTLS"):
            built.notifications.send_login_link(user, "https://auth.example.com/lc/ABC")
        assert smtp_server.inbox.messages == []
    finally:
        asyncio.run(built.close())


# --- the admin console ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_console_emails_the_login_link_instead_of_showing_it(
    mailing: Services, smtp_server: MailServer
) -> None:
    from tests.admin.test_admin_console import admin_client, post

    mailing.users.create_user("bob", "bob@example.com", "Bob")
    async with await admin_client(mailing) as client:
        page = await client.get("/admin/users/bob")
        assert 'id="email-login-link"' in page.text
        response = await post(
            client, "/admin/users/bob/login-link", {"minutes": "30", "send": "email"}
        )
        shown = await client.get(response.headers["location"])
    assert response.status_code == 303
    (message,) = smtp_server.inbox.wait()
    assert smtp_server.inbox.recipients == [["bob@example.com"]]
    linked = re.search(r"https://auth\.example\.com/lc/\w+", _body(message))
    assert linked is not None and linked.group(0) not in shown.text
    assert "emailed to bob@example.com" in shown.text
    (event,) = mailing.audit.search(event="login_link_emailed").events
    assert event.details["username"] == "bob"


@pytest.mark.anyio
async def test_console_offers_no_email_button_without_smtp(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.admin.test_admin_console import admin_client

    built = build_services(make_settings(db_provider="sqlite"))
    try:
        built.users.create_user("bob", "bob@example.com")
        async with await admin_client(built) as client:
            page = await client.get("/admin/users/bob")
        assert page.status_code == 200 and 'id="email-login-link"' not in page.text
    finally:
        await built.close()
