"""Sharing: grants on folders and products, and who may read or change what."""
