"""imagekit: the build toolkit and CLI (build path). The runtime lives in runtime/, deploy in deploy/."""
__version__ = "0.1.0"
