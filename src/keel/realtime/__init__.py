"""Real-time alerts over WebSocket: tickets, the socket, and the outbox consumer that
publishes alert events after their transaction committed."""
