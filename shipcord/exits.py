"""The `shipcord` command's exit statuses."""

EXIT_OK = 0
# Something outside shipcord failed (Temporal unreachable, the server would not start).
EXIT_RUNTIME = 1
# A problem a person fixes in the settings or the targets file.
EXIT_CONFIG = 2
