"""The workspace folder's layout moved to state/layout.py."""
from .state.layout import *  # noqa: F401,F403
from .state.layout import RUN_DIR_VARIABLE, RunFolder, ServiceFolder, WorkspaceFolder  # noqa: F401
