"""Notices that reach owners once: failed deployments and supervision incidents."""
