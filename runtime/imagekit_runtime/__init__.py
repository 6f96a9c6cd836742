"""imagekit's runtime: runs a pipeline's steps under supervisord over shared memory.

Shipped inside images on its own: it imports only the standard library,
supervisor and pyyaml, never the build toolkit.
"""
__version__ = "0.1.0"
