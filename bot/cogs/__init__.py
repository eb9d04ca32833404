"""Cogs: one feature per module, each with `async def setup(bot)`."""
