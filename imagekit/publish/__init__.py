"""The publish path: a locally built image → a destination (publisher.py is the contract, registry.py a registry)."""
