"""Importers: turn another login gateway's configuration and data into Passgate's (`passgate
import tinyauth`). Imports the areas below gateway.services."""
