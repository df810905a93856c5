"""Webhooks: subscriptions, signed deliveries of domain events, retries and replays."""
