"""The request at the edge: canonical request target, forwarded headers, client address,
request ids and access-log lines. Pure parsing, no I/O.
Imports nothing else from gateway.
"""
