"""Products: the catalogue's items, owned by a user, optionally filed in a folder."""
