-- Routing reads that must not grow with the workspace.
--
-- An inbox's routing snapshot (per-agent open load, the waiting queue, the assigned
-- set) filters on the inbox alone; the inbox view indexes begin with the workspace, so
-- these queries scanned every conversation. This index answers all three from the
-- index alone.
CREATE INDEX conversations_routing ON conversations (inbox_id, status, assignee_id, created_at, id);

-- Each automatic assignment counts the agent's open conversations in the inbox under
-- the agent's lock (the capacity check). With (assignee_id, status) alone each of those
-- rows was read from the table: a burst of N arrivals to A agents cost O(N²/A) row
-- reads. Now the count reads index entries only.
CREATE INDEX conversations_assignee_load ON conversations (assignee_id, status, inbox_id);
