"""Administration: the service layer under CLI, console and API, API keys, backups; the
admin API, its OpenAPI document and the console pages. Imports every area below it
(the API and pages also gateway.web and gateway.services).
"""
