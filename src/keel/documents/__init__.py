"""Documents: safe uploads, content-checked types, extraction, chunking and search."""
