-- Fewer indexes on `conversations`, and room for HOT updates.
--
-- Every stored message updates its conversation's row (`last_seq`, `last_message_at`,
-- `updated_at`), and an update writes a new entry into every index of the table unless
-- it is a HOT update (no indexed column changed, and room on the row's page). Three
-- indexes were prefixes or near twins of others and served no query the others do not:
--   conversations_inbox    (workspace_id, inbox_id, status, last_message_at): nothing
--                          orders or filters by last_message_at; the inbox views use
--                          conversations_ws_inbox_status_id. It also made every append's
--                          update non-HOT.
--   conversations_assignee (assignee_id, status): a prefix of conversations_assignee_load
--                          and conversations_assignee_status_id.
--   conversations_contact  (contact_id, status): conversations_contact_id (contact_id, id)
--                          serves the contact's conversations, which are few.
-- fillfactor 70 leaves room on each page for the new versions of its rows, so appends
-- update conversations in place (HOT) instead of adding index entries (new pages only;
-- existing rows move as they are updated).
DROP INDEX IF EXISTS conversations_inbox;
DROP INDEX IF EXISTS conversations_assignee;
DROP INDEX IF EXISTS conversations_contact;
ALTER TABLE conversations SET (fillfactor = 70);
