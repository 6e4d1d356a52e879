"""Model versions, aliases, lineage and the audit log."""
