"""/history: a bot's deployments, newest first, page by page."""
