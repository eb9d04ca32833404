-- A release keeps the target it was deployed from (JSON), so that stopping or restarting
-- it never depends on the targets file as it is later.
ALTER TABLE releases ADD COLUMN target TEXT;
-- The front end keeps the workflow's result (JSON) when it closes a deployment's row:
-- a closed row renders exactly as the workflow ended, without asking Temporal again.
ALTER TABLE deployments ADD COLUMN result TEXT;
