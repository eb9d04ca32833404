"""The deployment engine: botDeploymentWorkflow, its activities and the worker."""
