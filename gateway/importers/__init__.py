"""Imports from other identity providers (`passgate import pocket-id`): a source module reads the
foreign database into plain records, its writer stores them through the areas' services in one
transaction, so an import happens completely or not at all. Imports oidc, passkeys, accounts,
audit, storage and core."""
