"""Demonstrations run by ``datastore-lite demo``."""
