"""Outbound HTTP to URLs that clients choose (input images, webhooks)."""
