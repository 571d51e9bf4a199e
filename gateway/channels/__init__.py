"""Delivery channels: how a message the gateway holds for an organisation reaches it."""
