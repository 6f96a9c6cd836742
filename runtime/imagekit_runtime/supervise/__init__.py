"""Step processes: the supervisord configuration, client and RPC, each step's program and environment,
the exit watch, warm steps' gates, and leftovers killed with their step."""
