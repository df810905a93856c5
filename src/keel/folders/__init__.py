"""Folders: a tree (at most ten levels) that groups products and carries sharing grants."""
