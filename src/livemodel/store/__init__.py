"""Persistence: metadata database, artifact store, prediction and label log."""
