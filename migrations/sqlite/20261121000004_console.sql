-- The agent console: first-run setup, per-agent read marks (unread), and the indexes
-- its inbox views page through (newest first by id, per workspace/inbox/assignee).

-- One row once the install is set up: `POST /api/v1/setup` inserts it in the same
-- transaction as the first admin, so two concurrent setups cannot both succeed.
CREATE TABLE setup_state (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    completed_at BIGINT NOT NULL
);
INSERT INTO setup_state (id, completed_at) SELECT 1, 0 WHERE EXISTS (SELECT 1 FROM users);

-- How far each agent has read each conversation (by seq).
CREATE TABLE conversation_reads (
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    last_read_seq   BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX conversation_reads_conversation ON conversation_reads (conversation_id);

-- Keyset pages of the inbox views: WHERE workspace (inbox) (status) ORDER BY id DESC.
CREATE INDEX conversations_ws_status_id ON conversations (workspace_id, status, id);
CREATE INDEX conversations_ws_inbox_status_id ON conversations (workspace_id, inbox_id, status, id);
CREATE INDEX conversations_assignee_status_id ON conversations (assignee_id, status, id);
CREATE INDEX conversations_contact_id ON conversations (contact_id, id);
