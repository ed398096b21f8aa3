"""Imports from other identity providers (issue 14): each source module reads the foreign
database into plain records; the writer modules store them through Passgate's services, in one
transaction, so an import happens completely or not at all."""
