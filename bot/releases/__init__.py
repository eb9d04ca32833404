"""/rollback and /logs, and the Show log button: a bot's earlier releases, put back or read."""
