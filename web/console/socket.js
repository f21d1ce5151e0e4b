// The agent socket (/ws/agent, authenticated by the session cookie): reconnects with a
// growing pause, then resumes every followed conversation from the last seq seen,
// re-sends every unacknowledged message with its original client_id, and restores the
// viewed conversation and the presence (both are per socket).

export class AgentSocket {
  constructor() {
    this.ws = null;
    this.handlers = new Set();
    this.stateHandlers = new Set();
    this.followed = new Map(); // conversation_id -> last seq seen
    this.pending = new Map(); // client_id -> send frame (no ack yet)
    this.viewing = null;
    this.presence = 'online';
    this.attempt = 0;
    this.stopped = false;
    this.connected = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
  }

  open() {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/agent';
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.connected = true;
      for (const [id, seq] of this.followed) this.raw({ type: 'resume', conversation_id: id, after_seq: seq });
      for (const frame of this.pending.values()) this.raw(frame);
      if (this.viewing) this.raw({ type: 'view', conversation_id: this.viewing });
      if (this.presence !== 'online') this.raw({ type: 'presence', status: this.presence });
      this.emitState();
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === 'message') {
        const seq = frame.message.seq;
        const known = this.followed.get(frame.conversation_id) || 0;
        if (seq <= known) return; // a repeat after a resume
        this.followed.set(frame.conversation_id, seq);
      } else if (frame.type === 'ack') {
        this.pending.delete(frame.client_id);
        const known = this.followed.get(frame.conversation_id) || 0;
        if (frame.seq === known + 1) this.followed.set(frame.conversation_id, frame.seq);
      } else if (frame.type === 'error' && frame.ref) {
        this.pending.delete(frame.ref);
      }
      for (const f of this.handlers) f(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.connected = false;
      this.emitState();
      if (this.stopped) return;
      const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.7 + Math.random() * 0.6);
      this.attempt += 1;
      setTimeout(() => !this.stopped && this.open(), delay);
    };
  }

  emitState() {
    for (const f of this.stateHandlers) f(this.connected, this.attempt);
  }

  raw(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  on(f) {
    this.handlers.add(f);
    return () => this.handlers.delete(f);
  }

  onState(f) {
    this.stateHandlers.add(f);
  }

  /**
   * Follow a conversation from `seq` (live messages after it arrive as frames). A
   * conversation already followed keeps its own cursor: jumping it forward to a newer
   * `seq` (say, the list's `last_seq` fetched after a reconnect) would drop the messages
   * in between that the resume is still delivering.
   */
  follow(id, seq) {
    if (this.followed.has(id)) return;
    this.followed.set(id, seq);
    this.raw({ type: 'resume', conversation_id: id, after_seq: seq });
  }

  /** Send a message; delivered (again) after reconnects until acknowledged. */
  send(conversationId, body, kind, attachments) {
    const clientId = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
    const frame = { type: 'send', client_id: clientId, conversation_id: conversationId, body, kind };
    if (attachments && attachments.length) frame.attachments = attachments;
    this.pending.set(clientId, frame);
    if (!this.followed.has(conversationId)) this.followed.set(conversationId, 0);
    this.raw(frame);
    return clientId;
  }

  view(id) {
    this.viewing = id;
    if (id) this.raw({ type: 'view', conversation_id: id });
  }

  typing(id, on) {
    this.raw({ type: 'typing', conversation_id: id, on });
  }

  setPresence(status) {
    this.presence = status;
    this.raw({ type: 'presence', status });
  }
}
