"""Importers: turn another login gateway's data and configuration into Passgate's."""
