"""The database: connections (SQLite or PostgreSQL), the schema and its migrations.
Imports only gateway.core.
"""
