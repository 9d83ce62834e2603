"""Everything that talks to PostgreSQL: pool, batch writes, reverts, notifications."""
