"""Outbound HTTP calls to URLs that customers choose (webhooks): SSRF checks, a client that
connects only to checked addresses, and Standard Webhooks signatures."""
