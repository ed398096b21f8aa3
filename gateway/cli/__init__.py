"""The `passgate` command, one module per command group. Imports gateway.services,
gateway.web (to serve) and every area.
"""
