"""Passgate: a self-hosted login gateway (Caddy forward-auth + passkey OpenID Connect provider)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("passgate")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
