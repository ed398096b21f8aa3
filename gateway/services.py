"""Wiring: builds the one set of services that the web app and the CLI share."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.accounts.known_devices import KnownDevices
from gateway.accounts.login_codes import LoginCodes
from gateway.accounts.notifications import Notifications
from gateway.accounts.users import UserService
from gateway.admin.administration import Administration
from gateway.admin.api_keys import ApiKeys
from gateway.admin.backup import Backups
from gateway.audit.geoip import GeoIP
from gateway.audit.geolite import GeoLiteUpdater
from gateway.audit.log import AuditLog
from gateway.core.crypto import SecretBox, load_or_create_master_key
from gateway.core.errors import SettingsInvalid, StorageError
from gateway.core.settings import Settings
from gateway.forward_auth.redirects import RedirectPolicy
from gateway.forward_auth.rules import RulesStore
from gateway.oidc.client_service import ClientService
from gateway.oidc.clients import load_declared_clients
from gateway.oidc.custom_claims import CustomClaims
from gateway.oidc.device_codes import DeviceCodes
from gateway.oidc.server import OidcServer
from gateway.oidc.signing_keys import SigningKeys
from gateway.oidc.tokens import OAuthStore
from gateway.passkeys.ceremonies import Ceremonies
from gateway.passkeys.credentials import PasskeyService
from gateway.passkeys.enrolment import Enrolment
from gateway.passkeys.signups import SignupTokens
from gateway.sessions.current_user import CurrentUser
from gateway.sessions.ephemeral import Ephemeral, RedisEphemeral, SqlEphemeral
from gateway.sessions.rate_limit import RateLimiter
from gateway.sessions.sessions import Sessions, SessionStore
from gateway.sessions.stores import RedisSessionStore, SqlSessionStore
from gateway.storage.db import Database
from gateway.storage.foreign_schema import refuse_pocket_id_database
from gateway.storage.migrations import migrate

log = logging.getLogger("passgate.geoip")


@dataclass
class Services:
    settings: Settings
    db: Database
    secrets: SecretBox
    users: UserService
    login_codes: LoginCodes
    sessions: Sessions
    current_user: CurrentUser
    rules: RulesStore
    redirects: RedirectPolicy
    passkeys: PasskeyService
    signups: SignupTokens
    ceremonies: Ceremonies
    enrolment: Enrolment
    rate_limits: RateLimiter
    ephemeral: Ephemeral  # short-lived shared state (DPoP jtis, PAR requests, re-auth markers)
    clients: ClientService
    keys: SigningKeys
    oauth: OAuthStore
    custom_claims: CustomClaims
    oidc: OidcServer
    audit: AuditLog
    geo: GeoIP | None
    known_devices: KnownDevices
    notifications: Notifications
    backups: Backups
    api_keys: ApiKeys
    admin: Administration
    geolite: GeoLiteUpdater | None = None  # MAXMIND_LICENSE_KEY downloads (import-pocket-id-env)

    async def close(self) -> None:
        await self.sessions.store.close()
        self.db.close()
        if self.geo is not None:
            self.geo.close()


def open_database(settings: Settings) -> Database:
    """Connect to the configured database and bring its schema up to date."""
    if settings.db_provider == "postgres":
        assert settings.db_connection_string is not None
        db = Database.postgres(settings.db_connection_string)
    else:
        db = Database.sqlite(settings.sqlite_path)
    try:
        refuse_pocket_id_database(db)  # a Pocket-ID env file's DB_CONNECTION_STRING
    except StorageError:
        db.close()
        raise
    migrate(db)
    return db


def _geoip(settings: Settings) -> tuple[GeoIP | None, GeoLiteUpdater | None]:
    """GeoIP from MAXMIND_DB_PATH; with MAXMIND_LICENSE_KEY the file is Passgate's to download,
    so a missing or unreadable one only waits for the next download."""
    path = settings.geolite_path
    if path is None:
        return None, None
    if not settings.maxmind_license_key:
        return GeoIP.open(path), None
    try:
        geo = GeoIP.open(path) if path.exists() else GeoIP.empty()
    except SettingsInvalid as exc:
        log.warning("%s; it will be downloaded again", exc)
        geo = GeoIP.empty()
    return geo, GeoLiteUpdater(settings, geo)


def build_services(settings: Settings) -> Services:
    """Open storage and build every service. Raises SettingsInvalid (also for an unreadable
    MAXMIND_DB_PATH)/StorageError/RulesError/ClientsConfigError."""
    rules = RulesStore(settings.config_file)
    # Checked first: a GeoIP file named but unreadable is a start-up error, before any storage.
    geo, geolite = _geoip(settings)
    db = open_database(settings)
    audit = AuditLog(db, geo, settings.audit_log_retention_days)
    box = SecretBox(load_or_create_master_key(settings.encryption_key, settings.data_dir))
    clients = ClientService(db, box)
    if settings.config_file is not None:
        clients.sync_declared(load_declared_clients(settings.config_file))
    keys = SigningKeys(db, box)
    keys.ensure()
    oauth = OAuthStore(db)
    users = UserService(db)
    custom_claims = CustomClaims(db, users)
    store: SessionStore
    ephemeral: Ephemeral
    if settings.redis_url:
        redis_store = RedisSessionStore(settings.redis_url)
        store, ephemeral = redis_store, RedisEphemeral(redis_store.client)
    else:
        store, ephemeral = SqlSessionStore(db), SqlEphemeral(db)
    passkeys = PasskeyService(db)
    signups = SignupTokens(db)
    sessions = Sessions(
        store,
        box.cookie_signing_key,
        duration=settings.session_duration * 60,
        inactivity=settings.session_inactivity * 60,
    )
    login_codes = LoginCodes(db, users)
    current_user = CurrentUser(sessions, users)
    api_keys = ApiKeys(db)
    notifications = Notifications(settings)
    return Services(
        settings=settings,
        db=db,
        secrets=box,
        users=users,
        login_codes=login_codes,
        sessions=sessions,
        current_user=current_user,
        rules=rules,
        redirects=RedirectPolicy(
            settings.app_url, settings.cookie_domain, lambda: rules.current.domains()
        ),
        passkeys=passkeys,
        signups=signups,
        ceremonies=Ceremonies(settings, ephemeral, passkeys, users),
        enrolment=Enrolment(db, users, signups, settings.admin_group),
        rate_limits=RateLimiter(ephemeral),
        ephemeral=ephemeral,
        clients=clients,
        keys=keys,
        oauth=oauth,
        custom_claims=custom_claims,
        oidc=OidcServer(
            settings.app_url,
            clients,
            oauth,
            users,
            keys,
            custom_claims,
            audit,
            ephemeral,
            devices=DeviceCodes(db),  # machine and TV grants
        ),
        audit=audit,
        backups=Backups(db, box, audit),
        geo=geo,
        known_devices=KnownDevices(db),
        notifications=notifications,
        api_keys=api_keys,
        geolite=geolite,
        admin=Administration(
            settings=settings,
            users=users,
            passkeys=passkeys,
            sessions=sessions,
            current_user=current_user,
            login_codes=login_codes,
            signups=signups,
            custom_claims=custom_claims,
            clients=clients,
            api_keys=api_keys,
            rules=rules,
            audit=audit,
            notifications=notifications,
            oauth=oauth,
        ),
    )
