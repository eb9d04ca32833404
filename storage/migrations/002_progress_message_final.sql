-- The workflow closes its deployment row itself; the front end still has to give the
-- progress message its final form afterwards, and remembers here that it did.
ALTER TABLE deployments ADD COLUMN message_final INTEGER NOT NULL DEFAULT 0
    CHECK (message_final IN (0, 1));
CREATE INDEX deployments_awaiting_final_message ON deployments(finished_at)
    WHERE is_open = 0 AND message_final = 0;
