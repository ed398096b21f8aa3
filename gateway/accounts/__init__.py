"""Users and groups, login codes, known devices, e-mail notifications; the account pages.
Imports audit, storage, core (its pages also gateway.web and gateway.services).
"""
