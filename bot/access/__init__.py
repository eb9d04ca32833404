"""Who may see, deploy, control and approve what: the permission model and its application."""
