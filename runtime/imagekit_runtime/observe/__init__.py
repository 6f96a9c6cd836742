"""What a run shows: the journal, step logs and their echo, the log format, metrics, health probes and
the live view they read."""
