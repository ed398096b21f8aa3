"""Administration: the one service layer under the CLI, the admin console and the admin API.

Every change goes through the underlying services (users, passkeys, sessions, clients, ...) and
is recorded in the audit log with the actor who made it. Details say what changed, never a
secret. Methods are async (database work runs in a worker thread) so pages and the API await
them; the CLI calls them with asyncio.run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

from starlette.concurrency import run_in_threadpool

from gateway.accounts.login_codes import LoginCodes
from gateway.accounts.notifications import Notifications
from gateway.accounts.users import Group, User, UserService
from gateway.admin.api_keys import ApiKey, ApiKeys
from gateway.audit.log import Actor, AuditFilters, AuditLog, AuditPage, DetailValue
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.settings import Settings
from gateway.forward_auth.decision import Outcome, decide
from gateway.forward_auth.rules import RulesStore
from gateway.http.forwarded import ForwardedInvalid, RequestAmbiguous, request_from_url
from gateway.http.request_facts import RequestFacts
from gateway.http.request_target import EncodedSlashes
from gateway.oidc.client_service import AppAuth, ClientService
from gateway.oidc.clients import ClientSecret, OidcClient
from gateway.oidc.custom_claims import CustomClaims
from gateway.oidc.tokens import OAuthStore
from gateway.passkeys.credentials import Passkey, PasskeyService
from gateway.passkeys.signups import SignupTokens
from gateway.sessions.current_user import CurrentUser
from gateway.sessions.sessions import SessionRecord, Sessions

LOGIN_LINK_MINUTES = (1, 1440)
SIGNUP_TOKEN_MAX_DAYS = 365
SIGNUP_TOKEN_MAX_USES = 1000


class ClientSettings(TypedDict, total=False):
    """The settings of an OIDC client an admin may choose (see ClientService.create)."""

    post_logout_redirect_uris: Sequence[str]
    allowed_groups: Sequence[str]
    pkce_required: bool
    wildcard_callbacks: bool
    id_token_alg: str
    access_token_lifetime: int
    refresh_token_lifetime: int
    refresh_tokens: bool
    logo_url: str
    # machine and TV grants
    grant_types: Sequence[str]
    client_credentials_scopes: Sequence[str]
    # access tokens: format, resource indicators (RFC 8707), DPoP (RFC 9449)
    access_token_format: str
    allowed_resources: Sequence[str]
    dpop_bound_access_tokens: bool
    app_auth: AppAuth  # PAR and signed client authentication (oidc-app-auth)
    # oidc-client-options (issue 13)
    skip_consent: bool
    require_reauth: bool
    launch_url: str


class ClientChanges(ClientSettings, total=False):
    name: str
    redirect_uris: Sequence[str]


@dataclass(frozen=True, slots=True)
class SignupInvite:
    url: str
    expires_at: float
    usage_limit: int


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """What forward-auth would answer for a URL: for one user, or for an anonymous visitor
    together with every active user the rules would let in."""

    url: str
    method: str
    username: str | None
    outcome: Outcome
    rule: str
    canonical_url: str  # the URL as forward-auth reads it (gateway.http.request_target)
    path: str  # the canonical path the rules matched
    allowed_users: tuple[str, ...] | None = None


def _joined(values: Iterable[str]) -> str:
    return ",".join(values)


def _created_by(actor: Actor) -> str:
    return f"{actor.kind}:{actor.name or actor.id}"


class Administration:
    """Admin operations on users, groups, claims, passkeys, sessions, clients and API keys."""

    def __init__(
        self,
        *,
        settings: Settings,
        users: UserService,
        passkeys: PasskeyService,
        sessions: Sessions,
        current_user: CurrentUser,
        login_codes: LoginCodes,
        signups: SignupTokens,
        custom_claims: CustomClaims,
        clients: ClientService,
        api_keys: ApiKeys,
        rules: RulesStore,
        audit: AuditLog,
        notifications: Notifications,
        oauth: OAuthStore,
    ) -> None:
        self._settings = settings
        self._users = users
        self._passkeys = passkeys
        self._sessions = sessions
        self._current_user = current_user
        self._login_codes = login_codes
        self._signups = signups
        self._claims = custom_claims
        self._clients = clients
        self._api_keys = api_keys
        self._rules = rules
        self._audit = audit
        self._notifications = notifications
        self._oauth = oauth

    async def _record(
        self, event: str, actor: Actor, user_id: str | None = None, **details: DetailValue
    ) -> None:
        await run_in_threadpool(
            self._audit.record, event, actor=actor, user_id=user_id, details=details
        )

    def _forget(self, usernames: Iterable[str]) -> None:
        """Drop cached identities of users whose groups or state changed (other workers catch
        up within a second)."""
        for name in usernames:
            user = self._users.get_user_by_name(name)
            self._current_user.forget(user.id)

    def _is_last_admin(self, username: str) -> bool:
        """True when `username` is the only enabled member of ADMIN_GROUP."""
        try:
            members = self._users.get_group(self._settings.admin_group).members
        except NotFound:
            return False
        enabled = [name for name in members if not self._users.get_user_by_name(name).disabled]
        return enabled == [username.strip().lower()]

    async def _keep_an_admin(self, username: str, change: str) -> None:
        """Refuse a change that would leave no enabled administrator (Conflict): the console
        and the API would then be out of everyone's reach."""
        if await run_in_threadpool(self._is_last_admin, username):
            raise Conflict(
                f"{username} is the last enabled administrator: {change} would leave nobody "
                f"to run Passgate; add someone else to {self._settings.admin_group} first"
            )

    def _refuse_admin_group(self, name: str, change: str) -> None:
        if name.strip() == self._settings.admin_group:
            raise Conflict(f"the administrators' group (ADMIN_GROUP) cannot be {change}")

    # users -----------------------------------------------------------------------------------

    async def list_users(self) -> list[User]:
        return await run_in_threadpool(self._users.list_users)

    async def get_user(self, username: str) -> User:
        """The user; NotFound."""
        return await run_in_threadpool(self._users.get_user_by_name, username)

    async def create_user(
        self,
        actor: Actor,
        username: str,
        email: str = "",
        display_name: str = "",
        groups: Sequence[str] = (),
    ) -> User:
        """Create a user. InvalidInput, Conflict (name taken), NotFound (unknown group)."""
        user = await run_in_threadpool(
            self._users.create_user, username, email, display_name, tuple(groups)
        )
        await self._record(
            "user_created",
            actor,
            user.id,
            username=user.username,
            email=user.email,
            display_name=user.display_name,
            groups=_joined(user.groups),
        )
        return user

    async def update_user(
        self,
        actor: Actor,
        username: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        groups: Sequence[str] | None = None,
    ) -> User:
        """Change the given fields (None keeps one); `groups` replaces the list. NotFound,
        InvalidInput, Conflict (it would remove the last administrator)."""
        if groups is not None and self._settings.admin_group not in groups:
            await self._keep_an_admin(username, "leaving the administrators' group")
        user = await run_in_threadpool(
            self._users.update_user,
            username,
            email=email,
            display_name=display_name,
            groups=None if groups is None else tuple(groups),
        )
        self._current_user.forget(user.id)
        changes: dict[str, DetailValue] = {}
        if email is not None:
            changes["email"] = user.email
        if display_name is not None:
            changes["display_name"] = user.display_name
        if groups is not None:
            changes["groups"] = _joined(user.groups)
        await self._record("user_updated", actor, user.id, username=user.username, **changes)
        return user

    async def set_disabled(self, actor: Actor, username: str, disabled: bool) -> User:
        """Disable (ending every session and revoking every token apps hold for them) or
        re-enable a user. NotFound, Conflict (the last administrator)."""
        if disabled:
            await self._keep_an_admin(username, "disabling them")
        user = await run_in_threadpool(self._users.set_disabled, username, disabled)
        if disabled:
            await self._sessions.end_all_for_user(user.id)
            await self._revoke_tokens(actor, user, "user disabled")
        self._current_user.forget(user.id)
        event = "user_disabled" if disabled else "user_enabled"
        await self._record(event, actor, user.id, username=user.username)
        return user

    async def _revoke_tokens(self, actor: Actor, user: User, cause: str) -> None:
        """Mark the user's live OIDC tokens revoked (introspection then says inactive, the
        table says when and the audit log why)."""
        count = await run_in_threadpool(self._oauth.revoke_for_user, user.id)
        if count:
            await self._record(
                "token_revoked", actor, user.id, username=user.username, cause=cause, count=count
            )

    async def delete_user(self, actor: Actor, username: str) -> User:
        """Delete a user with their passkeys, groups and claims; end every session. NotFound,
        Conflict (the last administrator)."""
        await self._keep_an_admin(username, "deleting them")
        user = await run_in_threadpool(self._users.delete_user, username)
        await self._sessions.end_all_for_user(user.id)
        self._current_user.forget(user.id)
        await self._record("user_deleted", actor, user.id, username=user.username)
        return user

    # a user's passkeys, sessions and sign-in links --------------------------------------------

    async def list_passkeys(self, username: str) -> list[Passkey]:
        user = await self.get_user(username)
        return await run_in_threadpool(self._passkeys.list_for_user, user.id)

    async def delete_passkey(self, actor: Actor, username: str, credential_id: str) -> None:
        """Revoke one of the user's passkeys. NotFound (user, or not their passkey)."""
        user = await self.get_user(username)
        passkey = await run_in_threadpool(self._passkeys.find, credential_id)
        await run_in_threadpool(self._passkeys.delete, user.id, credential_id)
        await self._record(
            "passkey_revoked",
            actor,
            user.id,
            username=user.username,
            credential_id=credential_id,
            name=passkey.name if passkey is not None else "",
        )

    async def list_sessions(self, username: str) -> list[SessionRecord]:
        """The user's live sessions, most recently seen first."""
        user = await self.get_user(username)
        return await self._sessions.list_for_user(user.id)

    async def end_session(self, actor: Actor, username: str, key: str) -> None:
        """End one session by its key (the hash shown in list_sessions). NotFound."""
        user = await self.get_user(username)
        if not await self._sessions.end_by_key(user.id, key):
            raise NotFound("no such session for this user")
        await self._record("session_revoked", actor, user.id, username=user.username, key=key)

    async def end_all_sessions(self, actor: Actor, username: str) -> int:
        """End every session of the user; return how many there were. NotFound."""
        user = await self.get_user(username)
        count = len(await self._sessions.list_for_user(user.id))
        await self._sessions.end_all_for_user(user.id)
        await self._record(
            "session_revoked", actor, user.id, username=user.username, all=True, count=count
        )
        return count

    async def create_login_link(self, actor: Actor, username: str, minutes: int = 60) -> str:
        """A single-use sign-in link (APP_URL/lc/CODE) valid for `minutes` (1-1440).
        NotFound, InvalidInput."""
        low, high = LOGIN_LINK_MINUTES
        if isinstance(minutes, bool) or not low <= minutes <= high:
            raise InvalidInput(f"minutes must be between {low} and {high}", "minutes")
        user = await self.get_user(username)
        code = await run_in_threadpool(self._login_codes.issue, user.username, minutes * 60.0)
        await self._record(
            "login_link_created", actor, user.id, username=user.username, minutes=minutes
        )
        return f"{self._settings.app_url}/lc/{code}"

    async def email_login_link(self, actor: Actor, username: str, minutes: int = 60) -> User:
        """Email the user a single-use sign-in link valid for `minutes`; return the user.
        Checked before a code exists, so a refusal leaves no usable code behind. NotFound,
        InvalidInput (email not configured, no address, bad minutes), MailFailed."""
        user = await self.get_user(username)
        if not self._notifications.enabled:
            raise InvalidInput("email is not configured (set SMTP_HOST and SMTP_FROM)")
        if not user.email:
            raise InvalidInput(f"user {user.username} has no email address", "email")
        url = await self.create_login_link(actor, username, minutes)
        await run_in_threadpool(self._notifications.send_login_link, user, url, minutes)
        await self._record("login_link_emailed", actor, user.id, username=user.username)
        return user

    async def create_signup_token(
        self, actor: Actor, days: float = 7.0, uses: int = 1
    ) -> SignupInvite:
        """A signup link for `uses` signups within `days`. InvalidInput."""
        if not 0 < days <= SIGNUP_TOKEN_MAX_DAYS:
            raise InvalidInput(
                f"days must be more than 0 and at most {SIGNUP_TOKEN_MAX_DAYS}", "days"
            )
        if isinstance(uses, bool) or not 1 <= uses <= SIGNUP_TOKEN_MAX_USES:
            raise InvalidInput(f"uses must be between 1 and {SIGNUP_TOKEN_MAX_USES}", "uses")
        token = await run_in_threadpool(self._signups.create, days * 86400, uses)
        await self._record("signup_token_created", actor, days=days, uses=uses)
        return SignupInvite(
            f"{self._settings.app_url}/signup?token={token.token}",
            token.expires_at,
            token.usage_limit,
        )

    # groups ----------------------------------------------------------------------------------

    async def list_groups(self) -> list[Group]:
        return await run_in_threadpool(self._users.list_groups)

    async def get_group(self, name: str) -> Group:
        """The group with its members; NotFound."""
        return await run_in_threadpool(self._users.get_group, name)

    async def create_group(self, actor: Actor, name: str) -> Group:
        """InvalidInput, Conflict."""
        group = await run_in_threadpool(self._users.create_group, name)
        await self._record("group_created", actor, group=group.name)
        return group

    async def rename_group(self, actor: Actor, name: str, new_name: str) -> Group:
        """NotFound, InvalidInput, Conflict (taken, or the administrators' group)."""
        self._refuse_admin_group(name, "renamed")
        group = await run_in_threadpool(self._users.rename_group, name, new_name)
        await run_in_threadpool(self._forget, group.members)
        await self._record("group_renamed", actor, group=group.name, old_name=name)
        return group

    async def delete_group(self, actor: Actor, name: str) -> Group:
        """Delete a group (its members stay, without it). NotFound, Conflict (the
        administrators' group)."""
        self._refuse_admin_group(name, "deleted")
        group = await run_in_threadpool(self._users.delete_group, name)
        await run_in_threadpool(self._forget, group.members)
        await self._record("group_deleted", actor, group=group.name)
        return group

    async def add_member(self, actor: Actor, group_name: str, username: str) -> Group:
        """NotFound (group or user)."""
        group = await run_in_threadpool(self._users.add_member, group_name, username)
        user = await self.get_user(username)
        self._current_user.forget(user.id)
        await self._record(
            "group_member_added", actor, user.id, group=group.name, username=user.username
        )
        return group

    async def remove_member(self, actor: Actor, group_name: str, username: str) -> Group:
        """NotFound (group or user), Conflict (the last administrator)."""
        if group_name.strip() == self._settings.admin_group:
            await self._keep_an_admin(username, "leaving the administrators' group")
        group = await run_in_threadpool(self._users.remove_member, group_name, username)
        user = await self.get_user(username)
        self._current_user.forget(user.id)
        await self._record(
            "group_member_removed", actor, user.id, group=group.name, username=user.username
        )
        return group

    # custom claims ---------------------------------------------------------------------------

    async def list_claims(self, subject: str) -> dict[str, str]:
        """Claims of `user:NAME` or `group:NAME`. InvalidInput, NotFound."""
        return await run_in_threadpool(self._claims.list, subject)

    async def set_claim(self, actor: Actor, subject: str, claim: str, value: str) -> dict[str, str]:
        """Set one claim; return the subject's claims. InvalidInput, NotFound."""
        await run_in_threadpool(self._claims.set, subject, claim, value)
        await self._record(
            "claim_set", actor, await self._subject_user(subject), subject=subject, claim=claim
        )
        return await self.list_claims(subject)

    async def unset_claim(self, actor: Actor, subject: str, claim: str) -> dict[str, str]:
        """Remove one claim; return the subject's claims. NotFound if it is not set."""
        if claim not in await self.list_claims(subject):
            raise NotFound(f"{subject} has no claim {claim!r}")
        await run_in_threadpool(self._claims.unset, subject, claim)
        await self._record(
            "claim_unset", actor, await self._subject_user(subject), subject=subject, claim=claim
        )
        return await self.list_claims(subject)

    async def _subject_user(self, subject: str) -> str | None:
        kind, _, name = subject.partition(":")
        return (await self.get_user(name)).id if kind == "user" else None

    # OIDC clients ----------------------------------------------------------------------------

    async def list_clients(self) -> list[OidcClient]:
        return await run_in_threadpool(self._clients.list)

    async def get_client(self, client_id: str) -> OidcClient:
        """NotFound."""
        return await run_in_threadpool(self._clients.get, client_id)

    async def create_client(
        self,
        actor: Actor,
        name: str,
        redirect_uris: Sequence[str],
        *,
        public: bool = False,
        **settings: Unpack[ClientSettings],
    ) -> tuple[OidcClient, str | None]:
        """Create a client; return it and its secret (None for public clients), shown once.
        InvalidInput, Conflict."""

        def create() -> tuple[OidcClient, str | None]:
            return self._clients.create(name, redirect_uris, public=public, **settings)

        client, secret = await run_in_threadpool(create)
        await self._record(
            "client_created",
            actor,
            client_id=client.client_id,
            name=client.name,
            public=client.public,
            redirect_uris=_joined(client.redirect_uris),
        )
        return client, secret

    async def update_client(
        self, actor: Actor, client_id: str, **changes: Unpack[ClientChanges]
    ) -> OidcClient:
        """Change the given settings. NotFound, ReadOnlyClient, InvalidInput."""

        def update() -> tuple[OidcClient, OidcClient]:
            return self._clients.get(client_id), self._clients.update(client_id, **changes)

        before, client = await run_in_threadpool(update)
        # The fields whose value changed: a console form sends every field, changed or not.
        fields = [key for key in changes if key != "app_auth"]
        app_auth = changes.get("app_auth")
        if app_auth is not None:  # PAR and client authentication, given as one group
            fields += list(app_auth.values())
        changed = [key for key in fields if getattr(before, key) != getattr(client, key)]
        await self._record(
            "client_updated",
            actor,
            client_id=client.client_id,
            name=client.name,
            changed=_joined(sorted(changed)),
        )
        return client

    async def delete_client(self, actor: Actor, client_id: str) -> OidcClient:
        """Delete a client with its tokens and consents. NotFound, ReadOnlyClient."""
        client = await run_in_threadpool(self._clients.delete, client_id)
        await self._record("client_deleted", actor, client_id=client_id, name=client.name)
        return client

    async def rotate_client_secret(self, actor: Actor, client_id: str) -> str:
        """Replace a confidential client's secret; return the new one (shown once).
        NotFound, ReadOnlyClient, InvalidInput (public client)."""
        secret = await run_in_threadpool(self._clients.rotate_secret, client_id)
        await self._record("client_secret_rotated", actor, client_id=client_id)
        return secret

    # oidc-client-options: several secrets per client, uploaded logos -------------------------

    async def list_client_secrets(self, client_id: str) -> tuple[ClientSecret, ...]:
        """A client's secrets, newest first, without their values. NotFound."""
        return await run_in_threadpool(self._clients.list_secrets, client_id)

    async def add_client_secret(
        self, actor: Actor, client_id: str, name: str = "", expires_at: float | None = None
    ) -> tuple[ClientSecret, str]:
        """Add a secret, keeping the others (rotation without downtime); return it and its
        value, shown once. NotFound, ReadOnlyClient, InvalidInput."""
        added, value = await run_in_threadpool(
            self._clients.add_secret, client_id, name, expires_at
        )
        await self._record(
            "client_secret_added",
            actor,
            client_id=client_id,
            secret_id=added.id,
            secret_name=added.name,
            expires_at=added.expires_at,
        )
        return added, value

    async def revoke_client_secret(
        self, actor: Actor, client_id: str, secret_id: str
    ) -> ClientSecret:
        """Revoke one secret at once. NotFound, ReadOnlyClient, Conflict (already revoked)."""
        revoked = await run_in_threadpool(self._clients.revoke_secret, client_id, secret_id)
        await self._record(
            "client_secret_revoked",
            actor,
            client_id=client_id,
            secret_id=revoked.id,
            secret_name=revoked.name,
        )
        return revoked

    async def set_client_logo(self, actor: Actor, client_id: str, image: bytes) -> OidcClient:
        """Store an uploaded logo (PNG or JPEG, size-capped). NotFound, ReadOnlyClient,
        InvalidInput."""
        client = await run_in_threadpool(self._clients.set_logo, client_id, image)
        await self._record(
            "client_updated",
            actor,
            client_id=client_id,
            name=client.name,
            changed="logo",
            logo_bytes=len(image),
        )
        return client

    async def delete_client_logo(self, actor: Actor, client_id: str) -> OidcClient:
        """Remove an uploaded logo. NotFound, ReadOnlyClient."""
        client = await run_in_threadpool(self._clients.delete_logo, client_id)
        await self._record(
            "client_updated", actor, client_id=client_id, name=client.name, changed="logo removed"
        )
        return client

    # API keys --------------------------------------------------------------------------------

    async def list_api_keys(self) -> list[ApiKey]:
        return await run_in_threadpool(self._api_keys.list)

    async def create_api_key(
        self, actor: Actor, name: str, scope: str = "read", days: float | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once). InvalidInput, Conflict."""
        key, token = await run_in_threadpool(
            self._api_keys.create, name, scope, days, _created_by(actor)
        )
        await self._record(
            "api_key_created",
            actor,
            key_id=key.id,
            name=key.name,
            scope=key.scope,
            expires_at=key.expires_at,
        )
        return key, token

    async def revoke_api_key(self, actor: Actor, key_id: str) -> ApiKey:
        """Revoke a key at once. NotFound, Conflict (already revoked)."""
        key = await run_in_threadpool(self._api_keys.revoke, key_id)
        await self._record("api_key_revoked", actor, key_id=key.id, name=key.name)
        return key

    # audit log -------------------------------------------------------------------------------

    async def search_audit(
        self,
        *,
        user: str | None = None,
        limit: int = 50,
        before: str | None = None,
        **filters: Unpack[AuditFilters],
    ) -> AuditPage:
        """Audit events newest first, `limit` at a time; pass the page's `next` as `before`
        for the following page. `user` is a username (or, for deleted users, a user id)."""
        if user is not None:
            filters["user_id"] = await self._user_id(user)

        def search() -> AuditPage:
            return self._audit.search(limit=limit, before=before, **filters)

        return await run_in_threadpool(search)

    def export_audit(
        self, *, user: str | None = None, **filters: Unpack[AuditFilters]
    ) -> Iterator[str]:
        """Matching events as JSON lines, newest first (synchronous: stream it from a thread)."""
        if user is not None:
            filters["user_id"] = self._user_id_now(user)
        return self._audit.export_jsonl(**filters)

    async def _user_id(self, user: str) -> str:
        return await run_in_threadpool(self._user_id_now, user)

    def _user_id_now(self, user: str) -> str:
        try:
            return self._users.get_user_by_name(user).id
        except NotFound:
            return user  # a deleted user's events stay findable by their id

    # access rules ----------------------------------------------------------------------------

    async def check_access(
        self, url: str, username: str | None = None, method: str = "GET"
    ) -> AccessCheck:
        """What forward-auth would answer for `url`: for `username` (a disabled user counts
        as signed out), or for an anonymous visitor plus the active users who would be let in.
        InvalidInput for a URL that is not absolute http(s); NotFound for an unknown user."""
        facts = _facts(url, method, self._settings.encoded_slashes)
        rules = self._rules.current
        if username is not None:
            user = await self.get_user(username)
            identity = None if user.disabled else user.identity()
            decision = decide(facts, identity, rules)
            return AccessCheck(
                url,
                facts.method,
                user.username,
                decision.outcome,
                decision.rule,
                facts.url,
                facts.path,
            )
        decision = decide(facts, None, rules)
        allowed = tuple(
            user.username
            for user in await self.list_users()
            if not user.disabled and decide(facts, user.identity(), rules).outcome in _LET_IN
        )
        return AccessCheck(
            url, facts.method, None, decision.outcome, decision.rule, facts.url, facts.path, allowed
        )


_LET_IN = frozenset({Outcome.ALLOW, Outcome.BYPASS})


def _facts(url: str, method: str, encoded_slashes: EncodedSlashes) -> RequestFacts:
    """The canonical request forward-auth would judge for `url`; InvalidInput says why not."""
    try:
        return request_from_url(url.strip(), method.strip().upper() or "GET", encoded_slashes)
    except RequestAmbiguous as exc:
        raise InvalidInput(f"forward-auth refuses this URL (400): {exc}", "url") from None
    except ForwardedInvalid as exc:
        field = "method" if "method" in str(exc) else "url"
        raise InvalidInput(f"{field}: {exc}", field) from None
