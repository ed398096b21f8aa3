"""Wiring: builds the one set of services that the web app and the CLI share."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.administration import Administration
from gateway.api_keys import ApiKeys
from gateway.audit import AuditLog
from gateway.crypto import SecretBox, load_or_create_master_key
from gateway.current_user import CurrentUser
from gateway.custom_claims import CustomClaims
from gateway.db import Database
from gateway.enrolment import Enrolment
from gateway.ephemeral import Ephemeral, RedisEphemeral, SqlEphemeral
from gateway.login_codes import LoginCodes
from gateway.migrations import migrate
from gateway.oauth_tokens import OAuthStore
from gateway.oidc_clients import ClientService, load_declared_clients
from gateway.oidc_server import OidcServer
from gateway.passkey_ceremonies import Ceremonies
from gateway.passkeys import PasskeyService
from gateway.rate_limit import RateLimiter
from gateway.redirects import RedirectPolicy
from gateway.rules import RulesStore
from gateway.session_stores import RedisSessionStore, SqlSessionStore
from gateway.sessions import Sessions, SessionStore
from gateway.settings import Settings
from gateway.signing_keys import SigningKeys
from gateway.signups import SignupTokens
from gateway.users import UserService


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
    clients: ClientService
    keys: SigningKeys
    oauth: OAuthStore
    custom_claims: CustomClaims
    oidc: OidcServer
    audit: AuditLog
    api_keys: ApiKeys
    admin: Administration

    async def close(self) -> None:
        await self.sessions.store.close()
        self.db.close()


def open_database(settings: Settings) -> Database:
    """Connect to the configured database and bring its schema up to date."""
    if settings.db_provider == "postgres":
        assert settings.db_connection_string is not None
        db = Database.postgres(settings.db_connection_string)
    else:
        db = Database.sqlite(settings.sqlite_path)
    migrate(db)
    return db


def build_services(settings: Settings) -> Services:
    """Open storage and build every service. Raises SettingsInvalid/StorageError/RulesError/
    ClientsConfigError."""
    rules = RulesStore(settings.config_file)
    db = open_database(settings)
    clients = ClientService(db)
    if settings.config_file is not None:
        clients.sync_declared(load_declared_clients(settings.config_file))
    box = SecretBox(load_or_create_master_key(settings.encryption_key, settings.data_dir))
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
    audit = AuditLog(db, settings.audit_log_retention_days)
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
        clients=clients,
        keys=keys,
        oauth=oauth,
        custom_claims=custom_claims,
        oidc=OidcServer(settings.app_url, clients, oauth, users, keys, custom_claims),
        audit=audit,
        api_keys=api_keys,
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
        ),
    )
