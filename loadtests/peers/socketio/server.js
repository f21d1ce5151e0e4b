'use strict';
// The Socket.IO 4 peer that `parley-load compare` measures Parley against: an idiomatic
// chat server doing the same durable work as Parley for the frames the load scenarios
// use. Each message is stored (with its per-conversation seq, in its own transaction,
// durable: PostgreSQL `synchronous_commit = on`, or SQLite WAL with `synchronous=FULL`)
// BEFORE it is acknowledged; conversations are rooms; agents follow conversations with
// `resume` (stored messages after a seq, then live); new conversations are assigned
// round-robin to the least recently assigned online agent below capacity. Several nodes
// share PostgreSQL and Redis (`@socket.io/redis-adapter`).
//
// Environment:
//   DATABASE_URL   postgres://…  or  sqlite:/path/to/file.db (one node only)
//   REDIS_URL      optional: the Redis adapter for several nodes
//   REDIS_PREFIX   optional: the adapter's key/channel prefix (default "socket.io")
//   HOST, PORT     where to listen (default 127.0.0.1:0); prints "listening on http://HOST:PORT"
//
// Wire (Socket.IO v5 over Engine.IO v4, WebSocket transport only):
//   handshake auth   {role: "visitor", token} | {role: "agent", token, capacity}
//   client events    send {client_id, conversation_id?, body} (with an ack callback)
//                    resume {conversation_id, after_seq}
//   ack payload      {client_id, conversation_id, id, seq} | {client_id, error: {code, message}}
//   server events    message {conversation_id, message: {id, conversation_id, seq, kind, sender, body, created_at}}
//                    conversation {event: "created" | "assigned", conversation: {id, assignee_id}}
//   HTTP             POST /sessions -> {visitor_token}   (a new visitor row, like a widget session)

const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');

const DATABASE_URL = process.env.DATABASE_URL || '';
const REDIS_URL = process.env.REDIS_URL || '';
const REDIS_PREFIX = process.env.REDIS_PREFIX || 'socket.io';
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 0);
const MAX_BODY = 10000;

const newId = () => crypto.randomUUID();

// ---------------------------------------------------------------- storage: PostgreSQL

const PG_SCHEMA = `
CREATE TABLE IF NOT EXISTS visitors (id text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS agents (
  id text PRIMARY KEY, capacity int NOT NULL, online boolean NOT NULL,
  open_count int NOT NULL DEFAULT 0, last_assigned_at timestamptz);
CREATE TABLE IF NOT EXISTS conversations (
  id text PRIMARY KEY, visitor_id text NOT NULL REFERENCES visitors(id), assignee_id text REFERENCES agents(id),
  status text NOT NULL DEFAULT 'open', last_seq bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS conversations_visitor ON conversations (visitor_id, created_at DESC);
CREATE TABLE IF NOT EXISTS messages (
  id text PRIMARY KEY, conversation_id text NOT NULL REFERENCES conversations(id), seq bigint NOT NULL,
  client_id text NOT NULL, sender_type text NOT NULL, sender_id text NOT NULL, body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (conversation_id, seq), UNIQUE (conversation_id, client_id));
`;

function pgStore(url) {
  const { Pool } = require('pg');
  const pool = new Pool({ connectionString: url, max: 10 });
  const tx = async (fn) => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  };
  return {
    kind: 'postgres',
    async init() {
      // Two nodes starting together race on CREATE TABLE IF NOT EXISTS: serialise them.
      await tx(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock(7007)');
        await c.query(PG_SCHEMA);
      });
    },
    async createVisitor(id) {
      await pool.query('INSERT INTO visitors (id) VALUES ($1)', [id]);
    },
    async visitorExists(id) {
      const r = await pool.query('SELECT 1 FROM visitors WHERE id = $1', [id]);
      return r.rowCount === 1;
    },
    async newestOpenConversation(visitorId) {
      const r = await pool.query(
        "SELECT id FROM conversations WHERE visitor_id = $1 AND status = 'open' ORDER BY created_at DESC LIMIT 1",
        [visitorId]);
      return r.rowCount ? r.rows[0].id : null;
    },
    async conversationVisitor(id) {
      const r = await pool.query('SELECT visitor_id FROM conversations WHERE id = $1', [id]);
      return r.rowCount ? r.rows[0].visitor_id : undefined;
    },
    async agentOnline(id, capacity, online) {
      await pool.query(
        `INSERT INTO agents (id, capacity, online) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET capacity = EXCLUDED.capacity, online = EXCLUDED.online`,
        [id, capacity, online]);
    },
    // Store one message; a new conversation first when `create` is set. Returns
    // {id, seq, created_at, duplicate}.
    async append({ conversationId, create, visitorId, senderType, senderId, clientId, body }) {
      return tx(async (c) => {
        if (create) {
          await c.query('INSERT INTO conversations (id, visitor_id) VALUES ($1, $2)', [conversationId, visitorId]);
        }
        const dup = await c.query(
          'SELECT id, seq, created_at FROM messages WHERE conversation_id = $1 AND client_id = $2',
          [conversationId, clientId]);
        if (dup.rowCount) return { ...dup.rows[0], seq: Number(dup.rows[0].seq), duplicate: true };
        const s = await c.query(
          'UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq', [conversationId]);
        const seq = Number(s.rows[0].last_seq);
        const id = newId();
        const m = await c.query(
          `INSERT INTO messages (id, conversation_id, seq, client_id, sender_type, sender_id, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
          [id, conversationId, seq, clientId, senderType, senderId, body]);
        return { id, seq, created_at: m.rows[0].created_at, duplicate: false };
      });
    },
    async after(conversationId, afterSeq) {
      const r = await pool.query(
        `SELECT id, seq, sender_type, sender_id, body, created_at FROM messages
         WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000`,
        [conversationId, afterSeq]);
      return r.rows.map((x) => ({ ...x, seq: Number(x.seq) }));
    },
    // Round-robin: the online agent below capacity assigned least recently. Returns the
    // agent id or null (the conversation waits).
    async assign(conversationId) {
      return tx(async (c) => {
        const a = await c.query(
          `WITH pick AS (
             SELECT id FROM agents WHERE online AND open_count < capacity
             ORDER BY last_assigned_at NULLS FIRST, id LIMIT 1 FOR UPDATE SKIP LOCKED)
           UPDATE agents SET open_count = open_count + 1, last_assigned_at = clock_timestamp()
           FROM pick WHERE agents.id = pick.id RETURNING agents.id`);
        if (!a.rowCount) return null;
        const agent = a.rows[0].id;
        const u = await c.query(
          "UPDATE conversations SET assignee_id = $1 WHERE id = $2 AND assignee_id IS NULL AND status = 'open'",
          [agent, conversationId]);
        if (!u.rowCount) throw new Error('conversation no longer assignable');
        return agent;
      });
    },
    async waiting() {
      const r = await pool.query(
        "SELECT id FROM conversations WHERE assignee_id IS NULL AND status = 'open' ORDER BY created_at LIMIT 100");
      return r.rows.map((x) => x.id);
    },
  };
}

// ---------------------------------------------------------------- storage: SQLite

const SQLITE_SCHEMA = `
CREATE TABLE IF NOT EXISTS visitors (id TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY, capacity INTEGER NOT NULL, online INTEGER NOT NULL,
  open_count INTEGER NOT NULL DEFAULT 0, last_assigned_at INTEGER);
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY, visitor_id TEXT NOT NULL REFERENCES visitors(id), assignee_id TEXT REFERENCES agents(id),
  status TEXT NOT NULL DEFAULT 'open', last_seq INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_visitor ON conversations (visitor_id, created_at DESC);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id), seq INTEGER NOT NULL,
  client_id TEXT NOT NULL, sender_type TEXT NOT NULL, sender_id TEXT NOT NULL, body TEXT NOT NULL,
  created_at TEXT NOT NULL, UNIQUE (conversation_id, seq), UNIQUE (conversation_id, client_id));
`;

function sqliteStore(path) {
  // better-sqlite3 is synchronous: each call blocks the event loop for its statement (and a
  // commit for its fsync), the usual way Node applications use it.
  const Database = require('better-sqlite3');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.exec(SQLITE_SCHEMA);
  const now = () => new Date().toISOString();
  const q = {
    insVisitor: db.prepare('INSERT INTO visitors (id, created_at) VALUES (?, ?)'),
    visitor: db.prepare('SELECT 1 FROM visitors WHERE id = ?'),
    newest: db.prepare("SELECT id FROM conversations WHERE visitor_id = ? AND status = 'open' ORDER BY created_at DESC LIMIT 1"),
    convVisitor: db.prepare('SELECT visitor_id FROM conversations WHERE id = ?'),
    agent: db.prepare(`INSERT INTO agents (id, capacity, online) VALUES (?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET capacity = excluded.capacity, online = excluded.online`),
    insConv: db.prepare('INSERT INTO conversations (id, visitor_id, created_at) VALUES (?, ?, ?)'),
    dup: db.prepare('SELECT id, seq, created_at FROM messages WHERE conversation_id = ? AND client_id = ?'),
    bump: db.prepare('UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq'),
    insMsg: db.prepare(`INSERT INTO messages (id, conversation_id, seq, client_id, sender_type, sender_id, body, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    after: db.prepare(`SELECT id, seq, sender_type, sender_id, body, created_at FROM messages
      WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT 1000`),
    pick: db.prepare(`UPDATE agents SET open_count = open_count + 1, last_assigned_at = ?
      WHERE id = (SELECT id FROM agents WHERE online AND open_count < capacity
                  ORDER BY last_assigned_at IS NOT NULL, last_assigned_at, id LIMIT 1) RETURNING id`),
    setAssignee: db.prepare("UPDATE conversations SET assignee_id = ? WHERE id = ? AND assignee_id IS NULL AND status = 'open'"),
    waiting: db.prepare("SELECT id FROM conversations WHERE assignee_id IS NULL AND status = 'open' ORDER BY created_at LIMIT 100"),
  };
  let tick = 0;
  const append = db.transaction(({ conversationId, create, visitorId, senderType, senderId, clientId, body }) => {
    if (create) q.insConv.run(conversationId, visitorId, now());
    const dup = q.dup.get(conversationId, clientId);
    if (dup) return { ...dup, duplicate: true };
    const seq = q.bump.get(conversationId).last_seq;
    const id = newId();
    const created_at = now();
    q.insMsg.run(id, conversationId, seq, clientId, senderType, senderId, body, created_at);
    return { id, seq, created_at, duplicate: false };
  });
  const assign = db.transaction((conversationId) => {
    const a = q.pick.get(++tick);
    if (!a) return null;
    q.setAssignee.run(a.id, conversationId);
    return a.id;
  });
  return {
    kind: 'sqlite',
    async init() {},
    async createVisitor(id) { q.insVisitor.run(id, now()); },
    async visitorExists(id) { return !!q.visitor.get(id); },
    async newestOpenConversation(v) { const r = q.newest.get(v); return r ? r.id : null; },
    async conversationVisitor(id) { const r = q.convVisitor.get(id); return r ? r.visitor_id : undefined; },
    async agentOnline(id, capacity, online) { q.agent.run(id, capacity, online ? 1 : 0); },
    async append(m) { return append(m); },
    async after(c, s) { return q.after.all(c, s); },
    async assign(c) { return assign(c); },
    async waiting() { return q.waiting.all().map((x) => x.id); },
  };
}

// ---------------------------------------------------------------- the server

async function main() {
  let store;
  if (DATABASE_URL.startsWith('postgres')) store = pgStore(DATABASE_URL);
  else if (DATABASE_URL.startsWith('sqlite:')) store = sqliteStore(DATABASE_URL.slice('sqlite:'.length));
  else throw new Error('DATABASE_URL must be postgres://… or sqlite:/path');
  await store.init();

  const httpServer = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/sessions') {
      const id = newId();
      store.createVisitor(id).then(
        () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ visitor_token: id })); },
        (e) => { res.writeHead(500); res.end(String(e)); });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });

  let pub;
  if (REDIS_URL) {
    const { createClient } = require('redis');
    const { createAdapter } = require('@socket.io/redis-adapter');
    pub = createClient({ url: REDIS_URL });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key: REDIS_PREFIX }));
  }

  const messageObject = (conversationId, m, senderType, senderId) => ({
    id: m.id, conversation_id: conversationId, seq: m.seq, kind: 'message',
    sender: { type: senderType, id: senderId }, body: m.body,
    created_at: new Date(m.created_at).toISOString(),
  });

  const announce = (event, id, assignee) =>
    io.to('agents').to(`conv:${id}`).emit('conversation', { event, conversation: { id, assignee_id: assignee } });

  // Route a new (or waiting) conversation; leaves it waiting when nobody can take it.
  const route = async (conversationId) => {
    const agent = await store.assign(conversationId).catch(() => null);
    if (agent) announce('assigned', conversationId, agent);
    return agent;
  };
  const drainQueue = async () => {
    for (const id of await store.waiting()) {
      if (!(await route(id))) break;
    }
  };

  // Who may see a conversation: agents every one, a visitor their own.
  const canSee = async (socket, conversationId) => {
    if (socket.data.role === 'agent') return (await store.conversationVisitor(conversationId)) !== undefined;
    if (socket.data.conversations.has(conversationId)) return true;
    return (await store.conversationVisitor(conversationId)) === socket.data.id;
  };

  io.use(async (socket, next) => {
    const { role, token, capacity } = socket.handshake.auth || {};
    try {
      if (role === 'visitor' && typeof token === 'string' && (await store.visitorExists(token))) {
        socket.data = { role, id: token, conversations: new Set() };
        const c = await store.newestOpenConversation(token);
        socket.data.current = c;
        if (c) socket.data.conversations.add(c);
        return next();
      }
      if (role === 'agent' && typeof token === 'string' && token) {
        socket.data = { role, id: token, conversations: new Set() };
        await store.agentOnline(token, Number.isInteger(capacity) && capacity > 0 ? capacity : 1000000, true);
        return next();
      }
    } catch (e) {
      return next(new Error('internal'));
    }
    next(new Error('unauthorized'));
  });

  io.on('connection', (socket) => {
    const d = socket.data;
    if (d.role === 'agent') {
      socket.join('agents');
      drainQueue().catch(() => {});
      socket.on('disconnect', () => { store.agentOnline(d.id, 1000000, false).catch(() => {}); });
    } else if (d.current) {
      socket.join(`conv:${d.current}`);
    }
    // One frame at a time per socket, in arrival order (as Parley handles a socket), so a
    // visitor's messages are stored in the order they were sent.
    let chain = Promise.resolve();
    const serial = (fn) => { chain = chain.then(fn).catch(() => {}); };

    socket.on('send', (frame, ack) => serial(async () => {
      const reply = typeof ack === 'function' ? ack : () => {};
      const clientId = frame && frame.client_id;
      const fail = (code, message) => reply({ client_id: clientId, error: { code, message } });
      if (!frame || typeof clientId !== 'string' || !clientId || clientId.length > 100) return fail('invalid_frame', 'client_id');
      if (typeof frame.body !== 'string' || !frame.body.trim()) return fail('invalid_frame', 'body');
      if (frame.body.length > MAX_BODY) return fail('body_too_long', 'body');
      let conversationId = frame.conversation_id;
      let create = false;
      if (!conversationId) {
        if (d.role === 'agent') return fail('invalid_frame', 'conversation_id');
        conversationId = d.current;
        if (!conversationId) { conversationId = newId(); create = true; }
      } else if (!(await canSee(socket, conversationId))) {
        return fail('not_found', 'conversation');
      }
      let m;
      try {
        m = await store.append({
          conversationId, create, visitorId: d.id, senderType: d.role, senderId: d.id, clientId, body: frame.body,
        });
      } catch (e) {
        return fail('internal', String(e.message || e));
      }
      if (!d.conversations.has(conversationId)) {
        d.conversations.add(conversationId);
        socket.join(`conv:${conversationId}`);
      }
      if (create) {
        d.current = conversationId;
        io.to('agents').emit('conversation', { event: 'created', conversation: { id: conversationId, assignee_id: null } });
      }
      reply({ client_id: clientId, conversation_id: conversationId, id: m.id, seq: m.seq });
      if (!m.duplicate) {
        socket.to(`conv:${conversationId}`).emit('message', {
          conversation_id: conversationId,
          message: messageObject(conversationId, { ...m, body: frame.body }, d.role, d.id),
        });
      }
      if (create) route(conversationId).catch(() => {});
    }));

    socket.on('resume', (frame) => serial(async () => {
      const conversationId = frame && frame.conversation_id;
      const afterSeq = Number(frame && frame.after_seq) || 0;
      if (typeof conversationId !== 'string' || !(await canSee(socket, conversationId))) {
        socket.emit('error_frame', { code: 'not_found' });
        return;
      }
      // Follow first, then replay what is stored: a message committed in between may come
      // twice (clients de-duplicate by seq).
      d.conversations.add(conversationId);
      socket.join(`conv:${conversationId}`);
      let after = afterSeq;
      for (;;) {
        const rows = await store.after(conversationId, after);
        for (const r of rows) {
          socket.emit('message', {
            conversation_id: conversationId,
            message: messageObject(conversationId, r, r.sender_type, r.sender_id),
          });
          after = r.seq;
        }
        if (rows.length < 1000) break;
      }
    }));
  });

  httpServer.listen(PORT, HOST, () => {
    const a = httpServer.address();
    console.log(`socket.io peer (${store.kind}${REDIS_URL ? '+redis' : ''}) listening on http://${a.address}:${a.port}`);
  });
  const stop = () => { io.close(); if (pub) pub.quit().catch(() => {}); setTimeout(() => process.exit(0), 500).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { console.error('socket.io peer failed:', e); process.exit(1); });
