"""One module per CLI verb; main.py assembles them."""
