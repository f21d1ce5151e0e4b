-- The website chat (issue 5): a chat channel's identity secret (visitor HMAC), its
-- chatflows (targeting, trigger, welcome message), and uploaded attachments.

ALTER TABLE channels ADD COLUMN identity_secret TEXT;
-- 1 when a website vouched for the contact's email (identity HMAC); only such contacts
-- are found by email when a visitor identifies.
ALTER TABLE contacts ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;

CREATE TABLE chatflows (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    channel_id      TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    enabled         BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    priority        BIGINT NOT NULL DEFAULT 100,
    targeting       TEXT NOT NULL,
    trigger_spec    TEXT NOT NULL,
    welcome_message TEXT NOT NULL DEFAULT '',
    display         TEXT NOT NULL CHECK (display IN ('popup', 'launcher')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX chatflows_channel ON chatflows (channel_id, priority, created_at);

CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    channel_id      TEXT REFERENCES channels(id) ON DELETE CASCADE,
    uploader_type   TEXT NOT NULL CHECK (uploader_type IN ('visitor', 'agent')),
    uploader_id     TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX uploads_conversation ON uploads (conversation_id);
