//! A socket's outbound queue: what its [`Session`](super::session::Session) (and the
//! socket layer's reader) write, drained by the socket's response body, which the HTTP
//! dispatcher polls directly — no task, no second channel in between.
//!
//! It is bounded in text frames: a full queue means the client is not keeping up, and
//! the session closes it ([`PushError::Full`]). A close either overtakes whatever is
//! still queued ([`Outbox::close`]) or comes after it ([`Outbox::close_after`]).
//! Transport control frames (ping, pong) do not count against the bound.
//!
//! Built for many idle sockets: an empty queue holds no allocation (a tokio `mpsc`
//! allocates a block of 32 slots when created, and a `watch` for the close signal
//! another), and a drained queue gives back what a burst made it grow to.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

/// What the socket layer must write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A text frame.
    Text(Arc<str>),
    /// Close the socket with a code and reason (the last frame).
    Close(u16, String),
    /// A ping (heartbeat), written by the socket layer.
    Ping,
    /// A pong answering the client's ping with its payload, written by the socket layer.
    Pong(Vec<u8>),
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds its bound of frames: the client is not reading fast enough.
    Full,
    /// The socket is closing or gone.
    Closed,
}

/// A queue that grew past this many slots is given back once drained.
const KEEP_SLOTS: usize = 16;

#[derive(Debug)]
struct State {
    frames: VecDeque<Arc<str>>,
    capacity: usize,
    ping: bool,
    pong: Option<Vec<u8>>,
    close: Option<(u16, String)>,
    /// The close goes out before the queued frames (else after them).
    overtake: bool,
    /// A close was queued, or the receiver is gone: nothing more is accepted.
    closed: bool,
    senders: usize,
    waker: Option<Waker>,
}

impl State {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent at every step, so a panicked holder leaves it usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A queue holding at most `capacity` text frames (at least one).
pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let state = Arc::new(Mutex::new(State {
        frames: VecDeque::new(),
        capacity: capacity.max(1),
        ping: false,
        pong: None,
        close: None,
        overtake: false,
        closed: false,
        senders: 1,
        waker: None,
    }));
    (
        Outbox {
            state: state.clone(),
        },
        OutboxReceiver { state, done: false },
    )
}

/// The writing end; clone it for each writer. When the last one is dropped, the
/// receiver yields what is queued and then ends.
#[derive(Debug)]
pub struct Outbox {
    state: Arc<Mutex<State>>,
}

impl Outbox {
    /// Queue a text frame.
    pub fn push(&self, frame: Arc<str>) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.frames.len() >= state.capacity {
            return Err(PushError::Full);
        }
        state.frames.push_back(frame);
        state.wake();
        Ok(())
    }

    /// Queue a ping (one is enough however often it is asked for).
    pub fn ping(&self) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        state.ping = true;
        state.wake();
        Ok(())
    }

    /// Queue a pong (only the latest is sent, as RFC 6455 § 5.5.3 allows).
    pub fn pong(&self, payload: &[u8]) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        state.pong = Some(payload.to_vec());
        state.wake();
        Ok(())
    }

    /// Close the socket next, ahead of anything queued (which is dropped); later pushes
    /// fail. The first close wins, but this one also hurries a pending
    /// [`close_after`](Self::close_after).
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        self.shut(code, reason.into(), true);
    }

    /// Close the socket once what is queued has been written; later pushes fail. The
    /// first close wins.
    pub fn close_after(&self, code: u16, reason: impl Into<String>) {
        self.shut(code, reason.into(), false);
    }

    fn shut(&self, code: u16, reason: String, overtake: bool) {
        let mut state = lock(&self.state);
        state.overtake |= overtake;
        if !state.closed {
            state.closed = true;
            state.close = Some((code, reason));
        }
        state.wake();
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        lock(&self.state).senders += 1;
        Self {
            state: self.state.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.senders -= 1;
        if state.senders == 0 {
            state.wake();
        }
    }
}

/// The reading end, a stream of what to write: an overtaking close first (then the
/// end), else control frames, then text frames in order, then a close that waited for
/// them; the end once every [`Outbox`] is dropped and the queue is drained. Dropping it makes pushes fail with
/// [`PushError::Closed`].
#[derive(Debug)]
pub struct OutboxReceiver {
    state: Arc<Mutex<State>>,
    done: bool,
}

impl Stream for OutboxReceiver {
    type Item = Outbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut state = lock(&self.state);
        let close_now = state.overtake || state.frames.is_empty();
        let next = if let Some((code, reason)) = state.close.take_if(|_| close_now) {
            state.frames = VecDeque::new();
            Some(Outbound::Close(code, reason))
        } else if let Some(payload) = state.pong.take() {
            Some(Outbound::Pong(payload))
        } else if std::mem::take(&mut state.ping) {
            Some(Outbound::Ping)
        } else if let Some(frame) = state.frames.pop_front() {
            if state.frames.is_empty() && state.frames.capacity() > KEEP_SLOTS {
                state.frames = VecDeque::new();
            }
            Some(Outbound::Text(frame))
        } else if state.senders == 0 {
            None
        } else {
            if !state
                .waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        drop(state);
        if matches!(next, None | Some(Outbound::Close(..))) {
            self.done = true;
        }
        Poll::Ready(next)
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures_util::StreamExt as _;
    use futures_util::task::noop_waker_ref;

    use super::*;

    fn text(s: &str) -> Arc<str> {
        s.into()
    }

    fn poll(rx: &mut OutboxReceiver) -> Poll<Option<Outbound>> {
        Pin::new(rx).poll_next(&mut Context::from_waker(noop_waker_ref()))
    }

    #[test]
    fn frames_come_out_in_order_and_the_bound_holds() {
        let (tx, mut rx) = outbox(2);
        tx.push(text("a")).unwrap();
        tx.push(text("b")).unwrap();
        assert_eq!(tx.push(text("c")), Err(PushError::Full));
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("a")))));
        tx.push(text("c")).unwrap();
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("b")))));
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("c")))));
        assert_eq!(poll(&mut rx), Poll::Pending);
    }

    #[test]
    fn control_frames_skip_the_bound_and_the_queue() {
        let (tx, mut rx) = outbox(1);
        tx.push(text("a")).unwrap();
        tx.ping().unwrap();
        tx.ping().unwrap();
        tx.pong(b"1").unwrap();
        tx.pong(b"2").unwrap();
        assert_eq!(
            poll(&mut rx),
            Poll::Ready(Some(Outbound::Pong(b"2".to_vec())))
        );
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Ping)));
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("a")))));
        assert_eq!(poll(&mut rx), Poll::Pending);
    }

    #[test]
    fn a_close_overtakes_the_queue_and_ends_it() {
        let (tx, mut rx) = outbox(4);
        tx.push(text("a")).unwrap();
        tx.close(4008, "too slow");
        tx.close(1001, "second close loses");
        assert_eq!(tx.push(text("b")), Err(PushError::Closed));
        assert_eq!(tx.ping(), Err(PushError::Closed));
        assert_eq!(
            poll(&mut rx),
            Poll::Ready(Some(Outbound::Close(4008, "too slow".into())))
        );
        assert_eq!(poll(&mut rx), Poll::Ready(None));
        assert_eq!(poll(&mut rx), Poll::Ready(None));
    }

    #[test]
    fn a_close_after_comes_after_the_queue_unless_a_close_hurries_it() {
        let (tx, mut rx) = outbox(4);
        tx.push(text("a")).unwrap();
        tx.push(text("b")).unwrap();
        tx.close_after(1009, "too large");
        assert_eq!(tx.push(text("c")), Err(PushError::Closed));
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("a")))));
        tx.close(4008, "too slow");
        assert_eq!(
            poll(&mut rx),
            Poll::Ready(Some(Outbound::Close(1009, "too large".into())))
        );
        assert_eq!(poll(&mut rx), Poll::Ready(None));

        let (tx, mut rx) = outbox(4);
        tx.push(text("a")).unwrap();
        tx.close_after(4000, "heartbeat timeout");
        drop(tx);
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("a")))));
        assert_eq!(
            poll(&mut rx),
            Poll::Ready(Some(Outbound::Close(4000, "heartbeat timeout".into())))
        );
        assert_eq!(poll(&mut rx), Poll::Ready(None));
    }

    #[test]
    fn the_last_sender_gone_drains_then_ends() {
        let (tx, mut rx) = outbox(4);
        let other = tx.clone();
        tx.push(text("a")).unwrap();
        drop(tx);
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("a")))));
        assert_eq!(poll(&mut rx), Poll::Pending);
        other.push(text("b")).unwrap();
        drop(other);
        assert_eq!(poll(&mut rx), Poll::Ready(Some(Outbound::Text(text("b")))));
        assert_eq!(poll(&mut rx), Poll::Ready(None));
    }

    #[test]
    fn pushes_fail_once_the_receiver_is_gone() {
        let (tx, rx) = outbox(4);
        drop(rx);
        assert_eq!(tx.push(text("a")), Err(PushError::Closed));
        assert_eq!(tx.pong(b""), Err(PushError::Closed));
    }

    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let (tx, mut rx) = outbox(1000);
        for i in 0..100 {
            tx.push(text(&i.to_string())).unwrap();
        }
        assert!(lock(&tx.state).frames.capacity() >= 100);
        for _ in 0..100 {
            assert!(matches!(
                poll(&mut rx),
                Poll::Ready(Some(Outbound::Text(_)))
            ));
        }
        assert_eq!(lock(&tx.state).frames.capacity(), 0);
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_push_from_another_task() {
        let (tx, mut rx) = outbox(4);
        let pushed = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.push(text("late")).unwrap();
        });
        assert_eq!(rx.next().await, Some(Outbound::Text(text("late"))));
        pushed.await.unwrap();
        assert_eq!(rx.next().await, None);
    }
}
