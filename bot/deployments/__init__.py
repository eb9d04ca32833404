"""/deploy, /status, /pause, /resume, /cancel and the control buttons."""
