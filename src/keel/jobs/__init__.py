"""The user-facing jobs API: a user's background work, its progress, result and files."""
