"""The publish path: a locally built image pushed to a registry (registry.py), and what that reports (publisher.py)."""
