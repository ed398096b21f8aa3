"""The web app: assembly (routes, the one place errors become responses), the ASGI entry,
health checks, sign-in pages and helpers every page shares. Imports gateway.services
and every area.
"""
