-- When a release went live: a promotion's soak time counts from here. Releases made
-- live before this migration count from their last update.
ALTER TABLE releases ADD COLUMN live_since TEXT;
