"""Bringing what was read from Pocket-ID into Passgate: a plan (what comes over, and what does
not and why), then one transaction through Passgate's services, audited with the counts."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from webauthn.helpers import bytes_to_base64url

from gateway.accounts.users import (
    UserService,
    validate_email,
    validate_group_name,
    validate_username,
)
from gateway.audit.log import Actor, AuditEvent, AuditLog, DetailValue
from gateway.core.errors import Conflict, InvalidInput
from gateway.importers import pocket_id
from gateway.oidc.client_service import IMPORTED_BCRYPT_PREFIX, ClientService, logo_type
from gateway.oidc.clients import (
    ACCESS_TOKEN_LIFETIME,
    REFRESH_TOKEN_LIFETIME,
    ClientSecret,
    OidcClient,
    validated,
)
from gateway.oidc.custom_claims import CustomClaims, check_claim
from gateway.oidc.signing_keys import Key, SigningKeys
from gateway.passkeys.credentials import NewPasskey, PasskeyService
from gateway.storage.db import Database, Transaction

EVENT = "pocket_id_imported"
HISTORY_ACTOR_NAME = "pocket-id"
# Always true of a Pocket-ID import, whatever the database holds.
GENERAL_NOTES = (
    "sessions, refresh tokens and authorization codes: people sign in again, apps ask again",
    "passkey sign counts and AAGUIDs: Pocket-ID stores neither (counting restarts at 0, "
    "passkeys show without their provider's name)",
    "API keys, SCIM providers, LDAP sync and application settings: set them up in Passgate",
)


class TargetNotEmpty(Conflict):
    """The Passgate database already holds users, groups or clients (and --merge was not given)."""


@dataclass(frozen=True, slots=True)
class ImportedUser:
    source: pocket_id.User
    username: str
    email: str
    groups: tuple[str, ...]


@dataclass
class Plan:
    """What an import will write (already checked against Passgate's rules) and what it leaves
    behind, each with its reason."""

    version: int
    groups: list[pocket_id.Group] = field(default_factory=list)
    users: list[ImportedUser] = field(default_factory=list)
    passkeys: list[pocket_id.Passkey] = field(default_factory=list)
    claims: list[pocket_id.Claim] = field(default_factory=list)
    clients: list[OidcClient] = field(default_factory=list)
    logos: dict[str, bytes] = field(default_factory=dict)
    signing_key: Key | None = None
    audit: list[pocket_id.AuditEntry] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.users),
            "groups": len(self.groups),
            "memberships": sum(len(u.groups) for u in self.users),
            "custom_claims": len(self.claims),
            "passkeys": len(self.passkeys),
            "clients": len(self.clients),
            "client_secrets": sum(len(c.secrets) for c in self.clients),
            "logos": len(self.logos),
            "signing_keys": int(self.signing_key is not None),
            "audit_events": len(self.audit),
        }

    def describe(self) -> list[str]:
        """The plan as lines for a person: counts, then what is not imported and why."""
        lines = [f"Pocket-ID schema version {self.version}"]
        lines += [f"  {name.replace('_', ' ')}: {count}" for name, count in self.counts().items()]
        lines += [
            f"  user {u.username} (sub {u.source.id}), groups: {', '.join(u.groups) or '-'}"
            for u in self.users
        ]
        lines += [f"  client {c.name} (client_id {c.client_id})" for c in self.clients]
        if self.signing_key is not None:
            lines.append(f"  signing key {self.signing_key.kid} becomes the active key")
        lines.append("not imported:")
        lines += [f"  - {note}" for note in (*self.left_behind, *GENERAL_NOTES)]
        return lines


def plan(data: pocket_id.PocketIdData, admin_group: str) -> Plan:
    """Check every record against Passgate's rules; what fails goes to `left_behind`."""
    result = Plan(version=data.version, audit=list(data.audit))
    left = result.left_behind
    group_names: dict[str, str] = {}
    for group in data.groups:
        try:
            validate_group_name(group.name)
        except InvalidInput as exc:
            left.append(f"group {group.name!r}: {exc}")
            continue
        group_names[group.id] = group.name
        result.groups.append(group)
    members: dict[str, list[str]] = {}
    for user_id, group_id in data.memberships:
        if group_id in group_names:
            members.setdefault(user_id, []).append(group_names[group_id])
    kept: set[str] = set()
    for user in data.users:
        try:
            username = validate_username(user.username.lower())
        except InvalidInput as exc:
            left.append(f"user {user.username!r} (id {user.id}) and their passkeys: {exc}")
            continue
        try:
            email = validate_email(user.email)
        except InvalidInput:
            left.append(f"the email address of user {username!r}: not an email address")
            email = ""
        groups = members.get(user.id, [])
        if user.is_admin and admin_group not in groups:
            groups.append(admin_group)
        result.users.append(ImportedUser(user, username, email, tuple(groups)))
        kept.add(user.id)
    if any(u.source.is_admin for u in result.users) and admin_group not in group_names.values():
        result.groups.append(pocket_id.Group(id="", name=admin_group))
    result.passkeys = [p for p in data.passkeys if p.user_id in kept]
    for claim in data.claims:
        owner = claim.user_id if claim.user_id else claim.group_id
        if owner not in kept and owner not in group_names:
            continue  # its user or group was left behind, and said so
        try:
            check_claim(claim.key, claim.value)
        except InvalidInput as exc:
            left.append(f"custom claim {claim.key!r}: {exc}")
            continue
        result.claims.append(claim)
    result.signing_key = _signing_key(data, left)
    alg = "ES256" if isinstance(result.signing_key, ECKey) else "RS256"
    for source in data.clients:
        client = _client(source, group_names, alg, left)
        if client is None:
            continue
        result.clients.append(client)
        if source.logo is not None:
            try:
                logo_type(source.logo)
                result.logos[client.client_id] = source.logo
            except InvalidInput as exc:
                left.append(f"the logo of client {source.name!r}: {exc}")
        elif source.logo_type:
            left.append(
                f"the logo of client {source.name!r}: kept on Pocket-ID's disk, not in its "
                "database; upload it again in the console"
            )
    return result


def _signing_key(data: pocket_id.PocketIdData, left: list[str]) -> Key | None:
    if data.signing_key is None:
        left.append(
            f"the signing key ({data.signing_key_note}): tokens Pocket-ID issued stop verifying"
        )
        return None
    try:
        kty = data.signing_key.get("kty")
        if kty == "RSA":
            return RSAKey.import_key(data.signing_key)
        if kty == "EC" and data.signing_key.get("crv") == "P-256":
            return ECKey.import_key(data.signing_key)
    except (JoseError, ValueError) as exc:
        left.append(f"the signing key: not a usable private JWK ({exc})")
        return None
    left.append(
        f"the signing key: Passgate signs with RSA or P-256 keys, this one is {kty} "
        "(tokens Pocket-ID issued stop verifying)"
    )
    return None


def _client(
    source: pocket_id.Client, group_names: dict[str, str], alg: str, left: list[str]
) -> OidcClient | None:
    label = f"client {source.name!r} ({source.id})"
    if source.federated:
        left.append(f"the federated client credentials of {label}: not supported by Passgate")
    allowed = tuple(group_names[g] for g in source.allowed_group_ids if g in group_names)
    if source.group_restricted and not allowed:
        left.append(f"{label}: restricted to groups none of which came over (fails closed)")
        return None
    if not source.callback_urls:
        left.append(
            f"{label}: it has no callback URL yet (Pocket-ID learns it on first use); "
            "add the client in Passgate with its URL"
        )
        return None
    low, high = ACCESS_TOKEN_LIFETIME
    access = min(max(source.access_token_minutes * 60, low), high)
    low, high = REFRESH_TOKEN_LIFETIME
    refresh = min(max(source.refresh_token_minutes * 60, low), high)
    if access != source.access_token_minutes * 60:
        left.append(
            f"the access token lifetime of {label}: outside Passgate's range, now {access}s"
        )
    secrets = tuple(
        ClientSecret(
            id=secret.id,
            name="pocket-id" if i == 0 else f"pocket-id-{i + 1}",
            secret_hash=IMPORTED_BCRYPT_PREFIX + secret.bcrypt_hash,
            created_at=secret.created_at or source.created_at or time.time(),
        )
        for i, secret in enumerate(source.secrets)
    )
    if not source.public and not secrets:
        left.append(f"{label}: a confidential client without a secret")
        return None
    try:
        return validated(
            OidcClient(
                client_id=source.id,
                name=source.name,
                public=source.public,
                redirect_uris=source.callback_urls,
                post_logout_redirect_uris=source.logout_callback_urls,
                allowed_groups=allowed if source.group_restricted else (),
                pkce_required=source.pkce or source.public,
                wildcard_callbacks=any(
                    "*" in u for u in (*source.callback_urls, *source.logout_callback_urls)
                ),
                id_token_alg=alg,
                access_token_lifetime=access,
                refresh_token_lifetime=refresh,
                refresh_tokens=False,
                logo_url="",
                declared=False,
                created_at=source.created_at or time.time(),
                secrets=() if source.public else secrets,
                skip_consent=source.skip_consent,
                require_reauth=source.requires_reauthentication,
                launch_url=source.launch_url,
                require_par=source.requires_par,
            )
        )
    except InvalidInput as exc:
        left.append(f"{label}: {exc}")
        return None


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""


@dataclass
class Writer:
    """The services an import writes through (all on the same database)."""

    db: Database
    users: UserService
    clients: ClientService
    keys: SigningKeys

    def run(self, chosen: Plan, actor: Actor, *, merge: bool, dry_run: bool) -> AuditEvent:
        """Write the plan in one transaction and audit it; with `dry_run`, do all of it and
        roll it back (so conflicts show). TargetNotEmpty without `merge` when Passgate holds
        data; Conflict/InvalidInput from the services, with nothing written."""
        try:
            with self.db.transaction() as tx:
                if not merge:
                    _check_empty(tx)
                event = self._write(tx, chosen, actor)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return event

    def _write(self, tx: Transaction, chosen: Plan, actor: Actor) -> AuditEvent:
        for group in chosen.groups:
            self.users.ensure_group(tx, group.name)
        group_ids = {
            g.id: str(row[0])
            for g in chosen.groups
            if g.id and (row := tx.fetchone("SELECT id FROM groups WHERE name = ?", (g.name,)))
        }
        for user in chosen.users:
            self.users.insert_user(
                tx,
                user.username,
                user.email,
                user.source.display_name,
                user.groups,
                user_id=user.source.id,
                disabled=user.source.disabled,
                created_at=user.source.created_at,
            )
            # Pocket-ID's user handle is the bytes of the user id: discoverable passkeys
            # answer with it, so it must stay the same.
            PasskeyService.set_user_handle(
                tx, user.source.id, bytes_to_base64url(user.source.id.encode("utf-8"))
            )
        for passkey in chosen.passkeys:
            PasskeyService.insert(
                tx,
                NewPasskey(
                    credential_id=bytes_to_base64url(passkey.credential_id),
                    user_id=passkey.user_id,
                    public_key=bytes_to_base64url(passkey.public_key),
                    sign_count=0,
                    transports=passkey.transports,
                    aaguid="",
                    backup_eligible=passkey.backup_eligible,
                    backed_up=passkey.backed_up,
                    name=passkey.name or "Passkey from Pocket-ID",
                ),
            )
        for claim in chosen.claims:
            if claim.user_id:
                CustomClaims.put(tx, "user", claim.user_id, claim.key, claim.value)
            elif claim.group_id in group_ids:
                CustomClaims.put(tx, "group", group_ids[claim.group_id], claim.key, claim.value)
        for client in chosen.clients:
            self.clients.insert(tx, client)
            if client.client_id in chosen.logos:
                ClientService.insert_logo(tx, client.client_id, chosen.logos[client.client_id])
        if chosen.signing_key is not None:
            self.keys.adopt(tx, chosen.signing_key)
        for entry in chosen.audit:
            AuditLog.insert(tx, _history(entry))
        details: dict[str, DetailValue] = {"schema_version": chosen.version}
        details.update(chosen.counts())
        details["left_behind"] = len(chosen.left_behind)
        event = AuditEvent(
            id=str(uuid.uuid4()),
            at=time.time(),
            event=EVENT,
            success=True,
            actor=actor,
            user_id=None,
            reason="",
            details=details,
        )
        AuditLog.insert(tx, event)
        return event


def _check_empty(tx: Transaction) -> None:
    held = {
        "users": "SELECT COUNT(*) FROM users",
        "groups": "SELECT COUNT(*) FROM groups",
        "OIDC clients": "SELECT COUNT(*) FROM oidc_clients WHERE declared = 0",
    }
    found = []
    for what, sql in held.items():
        row = tx.fetchone(sql)
        if row and int(row[0]):
            found.append(f"{int(row[0])} {what}")
    if found:
        raise TargetNotEmpty(
            f"this Passgate database already holds {', '.join(found)}: import into an empty "
            "one, or pass --merge to add to it"
        )


def _history(entry: pocket_id.AuditEntry) -> AuditEvent:
    details: dict[str, Any] = dict(entry.data)
    details.update(source="pocket-id", pocket_id_event=entry.event)
    if entry.country:
        details["country"] = entry.country
    if entry.city:
        details["city"] = entry.city
    return AuditEvent(
        id=entry.id or str(uuid.uuid4()),
        at=entry.at,
        event=f"pocket_id_{entry.event.lower()}",
        success=True,
        actor=Actor("system", name=HISTORY_ACTOR_NAME, ip=entry.ip, user_agent=entry.user_agent),
        user_id=entry.user_id,
        reason="",
        details=details,
    )
