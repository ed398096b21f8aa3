"""The OpenID Connect provider: clients, authlib server and grants, claims, tokens, signing
keys, custom claims; its endpoints. Imports passkeys, forward_auth and below (its
endpoints also gateway.web and gateway.services).
"""
