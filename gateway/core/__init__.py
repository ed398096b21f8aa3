"""What every area shares: settings, error types, crypto, the identity we pass around,
logging, Prometheus counters and the Jinja environment.
Imports only gateway.http.
"""
