"""The audit log (who did what, from where) and the GeoIP lookup that places an address.
Imports storage and core.
"""
