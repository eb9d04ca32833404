-- Which installation this database belongs to. Releases are marked with it, so that
-- supervision never touches another installation's bots on the same machine.
CREATE TABLE installation (
    id              TEXT NOT NULL
);
INSERT INTO installation (id) VALUES (lower(hex(randomblob(8))));

-- Supervision of active releases (workers write it): recent restarts, when the next one
-- may happen, and whether the release was given up as crash-looping.
CREATE TABLE release_watch (
    release_id      INTEGER PRIMARY KEY REFERENCES releases(id) ON DELETE CASCADE,
    restarts        TEXT NOT NULL DEFAULT '[]',
    next_attempt_at TEXT,
    crash_looping   INTEGER NOT NULL DEFAULT 0 CHECK (crash_looping IN (0, 1)),
    updated_at      TEXT NOT NULL
);

-- What supervision found and did (workers write it); `key` makes finding the same thing
-- twice one incident.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    bot_name        TEXT NOT NULL,
    release_number  INTEGER,
    workflow_id     TEXT,
    kind            TEXT NOT NULL,
    message         TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX incidents_by_bot ON incidents(bot_name, created_at);

-- Which incidents the front end has told their owners about (the front end writes it).
CREATE TABLE incident_notices (
    incident_id     INTEGER PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
    notified_at     TEXT NOT NULL
);
