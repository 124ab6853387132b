"""labelsieve.store: the project store (append-only label events with provenance) and project runs."""

from labelsieve.store.core import Store, UnknownLabelerError, store_url
from labelsieve.store.schema import PRECEDENCE, SCHEMA_VERSION, SOURCES

__all__ = ["PRECEDENCE", "SCHEMA_VERSION", "SOURCES", "Store", "UnknownLabelerError", "store_url"]
