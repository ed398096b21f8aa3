"""Email notifications over SMTP (optional, off until SMTP_HOST is set): one-time login links
and "new sign-in from a new device" notices.

smtplib blocks, so web callers run these in a worker thread (or after the response is sent).
Nothing here logs the SMTP password, a login link or a code.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from gateway.accounts.users import User
from gateway.core.errors import InvalidInput, PassgateError
from gateway.core.settings import Settings

log = logging.getLogger("passgate.notifications")

TIMEOUT = 15.0


class MailFailed(PassgateError):
    """The SMTP server could not be reached or refused the message; the message says why
    without any secret in it."""


class Notifications:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def enabled(self) -> bool:
        return self._settings.smtp_host is not None

    def send_login_link(self, user: User, url: str, minutes: int = 60) -> None:
        """Email a one-time login link to the user. Raises InvalidInput (no email address or
        SMTP off) or MailFailed."""
        name = self._settings.app_name
        text = (
            f"Hello {user.display_name or user.username},\n\n"
            f"Use this link to sign in to {name}. It works once and expires in {minutes} "
            f"minutes:\n\n{url}\n\n"
            "If you did not expect this email, you can ignore it.\n"
        )
        self._send(user, f"Your {name} sign-in link", text)

    def send_new_device_notice(
        self, user: User, ip: str, user_agent: str, method: str, place: str = ""
    ) -> None:
        """Tell the user their account was signed in from a device not seen before.
        Raises InvalidInput or MailFailed."""
        name = self._settings.app_name
        where = f"{ip} ({place})" if place else ip or "unknown"
        text = (
            f"Hello {user.display_name or user.username},\n\n"
            f"Your {name} account was just signed in from a new device.\n\n"
            f"Address: {where}\nBrowser: {user_agent or 'unknown'}\nMethod: {method}\n\n"
            "If this was you, there is nothing to do. If not, open "
            f"{self._settings.app_url}/account, end the sessions you do not recognise and "
            "remove any passkey you do not know.\n"
        )
        self._send(user, f"New sign-in to your {name} account", text)

    def notify_new_device(
        self, user: User, ip: str, user_agent: str, method: str, place: str = ""
    ) -> None:
        """The new-device notice as a background job: a failure is logged, never raised."""
        if not self.enabled or not user.email:
            return
        try:
            self.send_new_device_notice(user, ip, user_agent, method, place)
        except (MailFailed, InvalidInput) as exc:
            log.warning("new-device notice to user %s not sent: %s", user.id, exc)

    def _send(self, user: User, subject: str, text: str) -> None:
        settings = self._settings
        if settings.smtp_host is None or settings.smtp_from is None:
            raise InvalidInput("email is not configured (set SMTP_HOST and SMTP_FROM)")
        if not user.email:
            raise InvalidInput(f"user {user.username} has no email address")
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = user.email
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(
            domain=parseaddr(settings.smtp_from)[1].rpartition("@")[2] or None
        )
        message.set_content(text)
        try:
            with self._connect(settings) as smtp:
                if settings.smtp_user and settings.smtp_password:
                    smtp.login(settings.smtp_user, settings.smtp_password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # smtplib's errors quote the server's reply, never our password.
            raise MailFailed(
                f"mail to user {user.username} via {settings.smtp_host}:{settings.smtp_port} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from None
        log.info("mail sent to user %s: %s", user.id, subject)

    @staticmethod
    def _connect(settings: Settings) -> smtplib.SMTP:
        host, port = settings.smtp_host or "", settings.smtp_port
        if settings.smtp_tls == "tls":
            return smtplib.SMTP_SSL(
                host, port, timeout=TIMEOUT, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
        if settings.smtp_tls == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp
