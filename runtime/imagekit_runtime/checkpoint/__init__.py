"""Checkpoints on the node-local SSD and the PersistentVolume: written whole, verified, restored,
quarantined, pruned."""
