"""The state on disk: the workspace folder's layout (layout.py) and how its files are written (files.py)."""
