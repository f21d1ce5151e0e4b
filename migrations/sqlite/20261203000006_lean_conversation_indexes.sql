-- Fewer indexes on `conversations` (see the PostgreSQL migration of the same name).
--
-- Every stored message updates its conversation's row, and each index holding a
-- changed column is rewritten. Three indexes were prefixes or near twins of others and
-- served no query the others do not:
--   conversations_inbox    (workspace_id, inbox_id, status, last_message_at): nothing
--                          orders or filters by last_message_at (rewritten per append);
--   conversations_assignee (assignee_id, status): a prefix of conversations_assignee_load
--                          and conversations_assignee_status_id;
--   conversations_contact  (contact_id, status): conversations_contact_id (contact_id, id)
--                          serves the contact's conversations, which are few.
DROP INDEX IF EXISTS conversations_inbox;
DROP INDEX IF EXISTS conversations_assignee;
DROP INDEX IF EXISTS conversations_contact;
