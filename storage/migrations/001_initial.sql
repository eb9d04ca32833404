-- Bots that have been deployed at least once, and each release of them.
CREATE TABLE bots (
    name            TEXT PRIMARY KEY,
    bot_type        TEXT NOT NULL,
    active_release  INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE releases (
    id              INTEGER PRIMARY KEY,
    bot_name        TEXT NOT NULL REFERENCES bots(name) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    version         TEXT NOT NULL,
    workflow_id     TEXT NOT NULL UNIQUE,
    previous_number INTEGER,
    runtime         TEXT NOT NULL,
    runtime_handle  TEXT,
    status          TEXT NOT NULL CHECK (status IN
                        ('pending', 'running', 'active', 'stopped', 'superseded', 'rolled_back')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (bot_name, number)
);

-- One row per deployment workflow: who owns it and where its progress message lives.
CREATE TABLE deployments (
    workflow_id     TEXT PRIMARY KEY,
    bot_name        TEXT NOT NULL,
    version         TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    guild_id        TEXT,
    channel_id      TEXT,
    message_id      TEXT,
    state           TEXT NOT NULL DEFAULT 'running',
    is_open         INTEGER NOT NULL DEFAULT 1 CHECK (is_open IN (0, 1)),
    notified        INTEGER NOT NULL DEFAULT 0 CHECK (notified IN (0, 1)),
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT
);

-- The database itself enforces one open deployment per bot, whoever starts it.
CREATE UNIQUE INDEX deployments_one_open_per_bot ON deployments(bot_name) WHERE is_open = 1;
CREATE INDEX deployments_open_by_guild ON deployments(guild_id) WHERE is_open = 1;

-- The application's slash commands as they were before a deployment changed them.
CREATE TABLE command_snapshots (
    workflow_id     TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL,
    commands        TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
