"""Sign-in sessions and their stores, cookies, CSRF, the current user, short-lived state
and rate limits. Imports accounts and below.
"""
