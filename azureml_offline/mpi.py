"""Moved to engine/mpi.py (kept here for code that imports it from this name)."""
from .engine.mpi import *  # noqa: F401,F403
