"""Passkeys: credentials, WebAuthn ceremonies, AAGUID names, enrolment and sign-up tokens;
their JSON API and pages. Imports sessions and below (its pages and API also
gateway.web and gateway.services).
"""
