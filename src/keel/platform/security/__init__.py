"""Passwords, tokens, encryption, the authenticated principal and the permission table."""
