"""One run of a shard: its options and where it keeps things, the conductor's scheduling state machine and
its step-end half, which steps run (the plan from what survived), the report, the shard's lock."""
