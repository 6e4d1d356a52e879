"""Pure statistics: profiles, drift, performance and sequential tests. No I/O here."""
