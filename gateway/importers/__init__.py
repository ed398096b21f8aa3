"""Importers: turn another login gateway's configuration and data into Passgate's (`passgate
import tinyauth`, `passgate import pocket-id`). A source module reads the foreign files or
database into plain records; the Pocket-ID writer stores them through the areas' services in one
transaction, so that import happens completely or not at all. Imports the areas below
gateway.services."""
