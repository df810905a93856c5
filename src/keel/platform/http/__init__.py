"""The HTTP contract: envelope, errors, request context and the middleware that enforce it."""
