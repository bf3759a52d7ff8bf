"""The REST shim: routes, webhook delivery and its egress guard."""
