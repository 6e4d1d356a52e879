"""The model server: validated, logged, metered predictions over HTTP."""
