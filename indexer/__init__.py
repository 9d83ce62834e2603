"""AudiFi chain indexer: follows the AudiFi contracts and writes their events into PostgreSQL."""

__version__ = "0.1.0"
