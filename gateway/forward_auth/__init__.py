"""The forward-auth hot path: access rules, the pure decision, redirects, refusals, and the
ASGI endpoint Caddy/Traefik/nginx ask. Imports sessions and below (the endpoint also
gateway.services).
"""
