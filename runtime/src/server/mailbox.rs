//! A connection's mailbox: the bounded queue of frames the hub fills and the connection's one
//! task drains, and the connection's closing state.
//!
//! The queue holds at most `capacity` frames plus one replay: a replay (the `ready` or
//! `subscribed` reply and the events it recovers) takes room of its own size above the capacity
//! until its last frame is taken, and a second replay is only queued once the first is written
//! ([`replay_written`](Mailbox::replay_written)). So whatever a client asks for, its queue stays
//! under `capacity + 1 + max_recovery × namespaces` frames.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;

use crate::protocol::CloseReason;
use crate::server::frame::Frame;
use crate::server::revocation::{Credentials, Revocation};

/// What the hub and a connection's task share: the connection's bounded outbound queue and its
/// closing state. One allocation per connection, and nothing preallocated: an idle connection
/// costs a few words here.
///
/// One task consumes a mailbox, awaiting [`pop`](Self::pop) and [`closed`](Self::closed) or
/// polling by hand after [`register`](Self::register): a new frame and a close request both wake
/// that task through one registered waker, which costs a delivery a few atomic operations rather
/// than the locks of a waiter list.
pub struct Mailbox {
    pub(crate) session_id: Box<str>,
    pub(crate) user_id: Arc<str>,
    /// The role the connection holds now: set at registration, changed by a refresh (under the
    /// hub's write lock, so that a delivery, which holds its read lock, sees one role or the
    /// other for the whole event).
    role: AtomicU32,
    /// Until when its rights hold, in milliseconds since the Unix epoch: its token's validity,
    /// or sooner, a re-authorization's deadline. The connection closes it then (4001).
    valid_until_ms: AtomicU64,
    /// The latest re-authorization request applied to it (ms since the Unix epoch; 0 for
    /// none): it is pending while the token's `issued_at_s` is older.
    reauthorize_asked_ms: AtomicU64,
    /// When its token was issued (`iat`, seconds since the Unix epoch; 0 when it does not say).
    issued_at_s: AtomicU64,
    /// What its token says that a revocation can name; `None` until its session holds it (a
    /// revocation scanning meanwhile passes it by, and the session checks the revocations in
    /// force itself once it holds it).
    token: Mutex<Option<TokenNames>>,
    capacity: usize,
    frames: Mutex<Queue>,
    close: OnceLock<CloseReason>,
    /// A close asked for once everything queued has been written (server shutdown).
    close_when_drained: OnceLock<CloseReason>,
    task: AtomicWaker,
    /// Woken when the last frame of the pending replay is taken (a `subscribe` waiting to queue
    /// its own).
    replay_done: AtomicWaker,
}

/// A token's names besides its user, and when it was issued: what revocations match.
struct TokenNames {
    token_id: Option<Box<str>>,
    login_session: Option<Box<str>>,
    issued_at: Option<u64>,
}

impl From<&Credentials<'_>> for TokenNames {
    fn from(credentials: &Credentials<'_>) -> Self {
        TokenNames {
            token_id: credentials.token_id.map(Into::into),
            login_session: credentials.login_session.map(Into::into),
            issued_at: credentials.issued_at,
        }
    }
}

/// The frames waiting to be written.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Frame>,
    /// How many frames were ever taken from the queue: the position of its front.
    taken: u64,
    /// Where the latest replay's frames are: from `replay_start` to just before `replay_end`.
    /// Those not yet taken are room above the capacity: a resuming client gets everything it
    /// missed and still the capacity for live events.
    replay_start: u64,
    replay_end: u64,
}

impl Queue {
    /// Frames of the latest replay still queued.
    fn replay_left(&self) -> usize {
        let front = self.taken.max(self.replay_start);
        self.replay_end.saturating_sub(front) as usize
    }

    /// Takes `count` frames off the front; whether that took the pending replay's last one.
    fn took(&mut self, count: usize) -> bool {
        let pending = self.replay_left() > 0;
        self.taken += count as u64;
        if self.frames.is_empty() {
            // An empty queue holds no memory: idle connections stay small, and a burst's
            // growth is given back once it has been written.
            self.frames.shrink_to_fit();
        }
        pending && self.replay_left() == 0
    }
}

/// The queue is full: the connection is not reading fast enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Mailbox {
    pub(crate) fn new(
        session_id: Box<str>,
        user_id: Arc<str>,
        role: u32,
        capacity: usize,
        initial: Vec<Frame>,
    ) -> Self {
        Mailbox {
            session_id,
            user_id,
            role: AtomicU32::new(role),
            valid_until_ms: AtomicU64::new(u64::MAX),
            reauthorize_asked_ms: AtomicU64::new(0),
            issued_at_s: AtomicU64::new(0),
            token: Mutex::new(None),
            capacity,
            frames: Mutex::new(Queue {
                replay_start: 0,
                replay_end: initial.len() as u64,
                frames: initial.into(),
                taken: 0,
            }),
            close: OnceLock::new(),
            close_when_drained: OnceLock::new(),
            task: AtomicWaker::new(),
            replay_done: AtomicWaker::new(),
        }
    }

    /// The role the connection holds now.
    pub(crate) fn role(&self) -> u32 {
        self.role.load(Ordering::Acquire)
    }

    /// Until when the connection's rights hold (ms since the Unix epoch).
    pub(crate) fn valid_until_ms(&self) -> u64 {
        self.valid_until_ms.load(Ordering::Acquire)
    }

    /// The connection holds a token with `credentials`, valid until `until_ms` at the latest
    /// (at the connect), and its task sets its timer by it.
    pub(crate) fn hold(&self, credentials: &Credentials<'_>, until_ms: u64) {
        self.issued_at_s
            .store(credentials.issued_at.unwrap_or(0), Ordering::Release);
        self.hold_token(credentials);
        self.valid_until_ms.fetch_min(until_ms, Ordering::AcqRel);
        self.task.wake();
    }

    /// From now on, revocations are matched against `credentials` (a refresh's new token).
    pub(crate) fn hold_token(&self, credentials: &Credentials<'_>) {
        *self.token.lock().expect("mailbox token lock") = Some(credentials.into());
    }

    /// Whether `revocation` names the token the connection holds (never before it holds one).
    pub(crate) fn revoked_by(&self, revocation: &Revocation) -> bool {
        let token = self.token.lock().expect("mailbox token lock");
        token.as_ref().is_some_and(|token| {
            revocation.matches(&Credentials {
                user_id: &self.user_id,
                token_id: token.token_id.as_deref(),
                login_session: token.login_session.as_deref(),
                issued_at: token.issued_at,
            })
        })
    }

    /// Asks the connection to re-authorize, the request made at `asked_ms`: unless its token
    /// was issued since, its rights end at `deadline_ms` at the latest, until a refresh brings
    /// such a token. False (and nothing changes) when its token is that fresh or this request,
    /// or a later one, was applied already (announcements may arrive twice). Called under the
    /// hub's read lock, or before the connection reads: never during a refresh
    /// ([`Hub::refresh`](crate::server::hub::Hub::refresh)).
    pub(crate) fn ask_reauthorization(&self, asked_ms: u64, deadline_ms: u64) -> bool {
        if self
            .reauthorize_asked_ms
            .fetch_max(asked_ms, Ordering::AcqRel)
            >= asked_ms
            || self.issued_at_s.load(Ordering::Acquire) >= asked_ms / 1000
        {
            return false;
        }
        self.valid_until_ms.fetch_min(deadline_ms, Ordering::AcqRel);
        self.task.wake();
        true
    }

    /// When the re-authorization it has not answered yet was asked for, if there is one.
    pub(crate) fn pending_reauthorization_ms(&self) -> Option<u64> {
        let asked_ms = self.reauthorize_asked_ms.load(Ordering::Acquire);
        (asked_ms != 0 && self.issued_at_s.load(Ordering::Acquire) < asked_ms / 1000)
            .then_some(asked_ms)
    }

    /// A refresh took effect: the connection holds `role`, with a token issued at `issued_at`,
    /// until `valid_until_ms`. Called under the hub's write lock.
    pub(crate) fn refreshed(&self, role: u32, issued_at: Option<u64>, valid_until_ms: u64) {
        self.role.store(role, Ordering::Release);
        self.issued_at_s
            .store(issued_at.unwrap_or(0), Ordering::Release);
        self.valid_until_ms.store(valid_until_ms, Ordering::Release);
        self.task.wake();
    }

    /// Queues a frame for the connection's writer, unless the queue is full.
    pub fn push(&self, frame: Frame) -> Result<(), Full> {
        let mut queue = self.frames.lock().expect("mailbox lock");
        if queue.frames.len() >= self.capacity + queue.replay_left() {
            return Err(Full);
        }
        queue.frames.push_back(frame);
        drop(queue);
        self.task.wake();
        Ok(())
    }

    /// Queues a reply and the replay that follows it, whatever the queue holds: they take room
    /// of their own above the capacity until their last frame is taken. Only one replay is
    /// pending at a time: the caller waits for [`replay_written`](Self::replay_written) first.
    pub(crate) fn push_replay(&self, frames: impl IntoIterator<Item = Frame>) {
        let mut queue = self.frames.lock().expect("mailbox lock");
        debug_assert_eq!(queue.replay_left(), 0, "one replay at a time");
        queue.replay_start = queue.taken + queue.frames.len() as u64;
        queue.frames.extend(frames);
        queue.replay_end = queue.taken + queue.frames.len() as u64;
        drop(queue);
        self.task.wake();
    }

    /// Resolves once every frame of the latest replay has been taken for writing: what a
    /// `subscribe` awaits before it queues a replay of its own, so that replays never stack up
    /// in the queue of a client that does not read.
    pub(crate) fn replay_written(&self) -> impl Future<Output = ()> + '_ {
        let written = |mailbox: &Self| {
            let queue = mailbox.frames.lock().expect("mailbox lock");
            (queue.replay_left() == 0).then_some(())
        };
        poll_fn(move |cx| {
            if written(self).is_some() {
                return Poll::Ready(());
            }
            self.replay_done.register(cx.waker());
            written(self).map_or(Poll::Pending, Poll::Ready)
        })
    }

    /// The next queued frame, if any.
    pub fn try_pop(&self) -> Option<Frame> {
        let mut queue = self.frames.lock().expect("mailbox lock");
        let frame = queue.frames.pop_front();
        let replay_done = frame.is_some() && queue.took(1);
        drop(queue);
        if replay_done {
            self.replay_done.wake();
        }
        frame
    }

    /// Moves up to `out.len()` queued frames, in order, into the front of `out` (one lock for a
    /// whole batch); returns how many.
    pub(crate) fn pop_into(&self, out: &mut [Bytes]) -> usize {
        let mut queue = self.frames.lock().expect("mailbox lock");
        let count = queue.frames.len().min(out.len());
        for (slot, frame) in out.iter_mut().zip(queue.frames.drain(..count)) {
            *slot = frame.into_bytes();
        }
        let replay_done = queue.took(count);
        drop(queue);
        if replay_done {
            self.replay_done.wake();
        }
        count
    }

    /// Leaves `waker` to be woken by the next push or close request: how a consumer that polls by
    /// hand ([`try_pop`](Self::try_pop), [`close_reason`](Self::close_reason)) waits. Register
    /// first, then check, so that nothing pushed in between goes unnoticed.
    pub fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// Waits for the next queued frame.
    pub fn pop(&self) -> impl Future<Output = Frame> + '_ {
        self.wait_for(Self::try_pop)
    }

    /// Asks the connection to close; returns false if it was already closing.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = self.close.set(reason).is_ok();
        if first {
            self.task.wake();
        }
        first
    }

    /// Asks the connection to close once it has written everything queued for it so far (the
    /// hub queues it no more events from then on); returns false if such a close was already
    /// asked for.
    pub fn close_when_drained(&self, reason: CloseReason) -> bool {
        let first = self.close_when_drained.set(reason).is_ok();
        if first {
            self.task.wake();
        }
        first
    }

    /// The close to begin once the queue is empty, if one was asked for.
    pub fn drained_close_reason(&self) -> Option<CloseReason> {
        self.close_when_drained.get().copied()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        self.frames.lock().expect("mailbox lock").frames.len()
    }

    /// Why the connection is closing, once it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close.get().copied()
    }

    /// Resolves when the connection is asked to close.
    pub fn closed(&self) -> impl Future<Output = CloseReason> + '_ {
        self.wait_for(Self::close_reason)
    }

    /// Resolves with `check`'s first `Some`, re-checked whenever the consuming task is woken.
    fn wait_for<T: 'static>(&self, check: fn(&Self) -> Option<T>) -> impl Future<Output = T> + '_ {
        poll_fn(move |cx| {
            if let Some(value) = check(self) {
                return Poll::Ready(value);
            }
            self.task.register(cx.waker());
            // Checked again after registering: a push or close in between woke no one.
            check(self).map_or(Poll::Pending, Poll::Ready)
        })
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("session_id", &self.session_id)
            .field("close", &self.close_reason())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Frame, Mailbox};
    use crate::protocol::close;

    fn mailbox() -> Arc<Mailbox> {
        Arc::new(Mailbox::new("s".into(), Arc::from("u"), 0, 4, Vec::new()))
    }

    /// Polls once; whether the future is still pending.
    fn pending(future: std::pin::Pin<&mut impl Future>) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx).is_pending()
    }

    /// Bounds a wait that must end, so that a lost wake-up fails the test instead of hanging it.
    async fn bounded<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("a wake-up was lost")
    }

    #[tokio::test]
    async fn a_push_from_another_task_wakes_the_waiting_pop() {
        let mailbox = mailbox();
        let producer = mailbox.clone();
        let pushed = tokio::spawn(async move {
            for frame in ["one", "two"] {
                tokio::task::yield_now().await;
                producer.push(Frame::text(frame)).unwrap();
            }
        });
        assert_eq!(bounded(mailbox.pop()).await.payload(), "one");
        assert_eq!(bounded(mailbox.pop()).await.payload(), "two");
        pushed.await.unwrap();
    }

    /// Revocations match the token a connection holds: none before its session holds one (the
    /// session checks the revocations itself then), and a refresh's new token from then on.
    #[test]
    fn a_revocation_matches_the_token_held_now() {
        use crate::server::revocation::{Credentials, Revocation};
        let mailbox = mailbox();
        let by_token = |jti: &str| Revocation {
            user_id: None,
            issued_before: None,
            login_session: None,
            token_id: Some(jti.into()),
        };
        let by_user = Revocation {
            user_id: Some("u".into()),
            ..by_token("x")
        };
        let token = |jti| Credentials {
            user_id: "u",
            token_id: Some(jti),
            login_session: None,
            issued_at: Some(100),
        };
        assert!(!mailbox.revoked_by(&by_token("t1")) && !mailbox.revoked_by(&by_user));
        mailbox.hold(&token("t1"), u64::MAX);
        assert!(mailbox.revoked_by(&by_token("t1")));
        assert!(!mailbox.revoked_by(&by_token("t2")));
        assert!(
            !mailbox.revoked_by(&by_user),
            "by user and token: both must match"
        );
        mailbox.hold_token(&token("t2"));
        assert!(!mailbox.revoked_by(&by_token("t1")) && mailbox.revoked_by(&by_token("t2")));
    }

    /// One task may wait for frames and for the close at once: one registered waker must serve
    /// both.
    #[tokio::test]
    async fn one_task_waits_for_frames_and_for_the_close_at_once() {
        let mailbox = mailbox();
        let other = mailbox.clone();
        let (saw_close, close_seen) = tokio::sync::oneshot::channel();
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            assert!(other.close(close::SLOW_CONSUMER));
            // The close alone must wake the task: the frame comes only once it was seen.
            bounded(close_seen).await.unwrap();
            other.push(Frame::text("late")).unwrap();
        });
        let closed = async {
            let reason = mailbox.closed().await;
            saw_close.send(()).unwrap();
            reason
        };
        let (frame, reason) = bounded(async { tokio::join!(mailbox.pop(), closed) }).await;
        assert_eq!((frame.payload(), reason), ("late", close::SLOW_CONSUMER));
        sender.await.unwrap();
    }

    #[test]
    fn a_full_queue_refuses_and_an_emptied_one_holds_no_memory() {
        let mailbox = mailbox();
        for i in 0..4 {
            mailbox.push(Frame::text(&i.to_string())).unwrap();
        }
        assert_eq!(mailbox.push(Frame::text("5")), Err(super::Full));
        while mailbox.try_pop().is_some() {}
        assert_eq!(mailbox.frames.lock().unwrap().frames.capacity(), 0);
    }

    #[test]
    fn a_replay_takes_room_above_the_capacity_until_its_last_frame_is_taken() {
        let mailbox = mailbox();
        mailbox.push(Frame::text("live")).unwrap();
        mailbox.push_replay((0..6).map(|i| Frame::text(&i.to_string())));
        // 7 queued; the capacity of 4 still has room for 3 more live frames.
        for _ in 0..3 {
            mailbox.push(Frame::text("more")).unwrap();
        }
        assert_eq!(mailbox.push(Frame::text("over")), Err(super::Full));
        // Taking the live frame and half the replay gives back only the live frame's room.
        for _ in 0..4 {
            mailbox.try_pop().unwrap();
        }
        mailbox.push(Frame::text("again")).unwrap();
        assert_eq!(mailbox.push(Frame::text("over")), Err(super::Full));
        // Once the replay is taken, the queue holds the capacity and no more, though it never
        // emptied.
        for _ in 0..3 {
            mailbox.try_pop().unwrap();
        }
        assert_eq!(mailbox.len(), 4);
        assert_eq!(mailbox.push(Frame::text("over")), Err(super::Full));
    }

    /// The fix for replays stacking up in the queue of a client that never reads: a second
    /// replay waits until the first is written.
    #[tokio::test]
    async fn a_second_replay_waits_until_the_first_is_taken() {
        let mailbox = mailbox();
        mailbox.push_replay((0..3).map(|i| Frame::text(&i.to_string())));
        let mut written = Box::pin(mailbox.replay_written());
        assert!(pending(written.as_mut()));
        mailbox.push(Frame::text("live")).unwrap();
        let mut batch: [bytes::Bytes; 2] = Default::default();
        assert_eq!(mailbox.pop_into(&mut batch), 2);
        assert!(pending(written.as_mut()));
        assert_eq!(
            mailbox.pop_into(&mut batch),
            2,
            "the replay's last frame and `live`"
        );
        bounded(written).await;
        bounded(mailbox.replay_written()).await;
    }

    #[test]
    fn batches_come_out_in_order_and_an_emptied_queue_holds_no_memory() {
        let mailbox = mailbox();
        for i in 0..3 {
            mailbox.push(Frame::text(&i.to_string())).unwrap();
        }
        let mut batch: [bytes::Bytes; 2] = Default::default();
        assert_eq!(mailbox.pop_into(&mut batch), 2);
        assert_eq!(
            batch,
            [Frame::text("0").into_bytes(), Frame::text("1").into_bytes()]
        );
        assert_ne!(
            mailbox.frames.lock().unwrap().frames.capacity(),
            0,
            "one frame is left"
        );
        assert_eq!(mailbox.pop_into(&mut batch), 1);
        assert_eq!(batch[0], Frame::text("2").into_bytes());
        assert_eq!(mailbox.frames.lock().unwrap().frames.capacity(), 0);
        assert_eq!(mailbox.pop_into(&mut batch), 0);
    }
}
