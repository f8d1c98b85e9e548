"""pytest-ltx: creative CI for LTX-2 video+audio clips."""

__version__ = "0.1.0"
