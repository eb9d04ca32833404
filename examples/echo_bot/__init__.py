"""A tiny Discord bot that shipcord deploys in its examples and tests."""
