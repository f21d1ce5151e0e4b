-- The real-time engine: what a message needs to be shown without joins, and the
-- visitors of chat channels (a visitor token maps a browser to a contact).

ALTER TABLE messages ADD COLUMN sender_name TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN channel TEXT NOT NULL DEFAULT 'chat';

CREATE TABLE visitors (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    channel_id   TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    contact_id   TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    page_url     TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX visitors_contact ON visitors (contact_id);
CREATE INDEX conversations_contact ON conversations (contact_id, status);
