"""Offline workspace: the part of the Azure ML v1 API that the tutorial uses, run on this machine."""
