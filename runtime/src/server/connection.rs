//! The socket driver: one WebSocket connection, served by one task that reads and writes the
//! upgraded socket itself. Frames only: what the client's messages mean is the session's.
//!
//! Outgoing event frames are written exactly as the hub encoded them, many per vectored write:
//! no per-recipient framing, copying or locking. Client frames are parsed by tungstenite's
//! [`WebSocketContext`], which also writes the protocol's own replies (pong, the close handshake);
//! those go to a small buffer that is written between whole event frames, so frames never
//! interleave on the wire.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice, Read, Write};
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, protocol::WebSocketContext};

use crate::protocol::{CloseReason, ControlMessage, close};
use crate::server::broker::BoxFuture;
use crate::server::frame::{self, Frame};
use crate::server::hub::Hub;
use crate::server::mailbox::Mailbox;
use crate::server::publication::now_ms;

/// The upgraded socket.
pub(crate) type Socket = TokioIo<Upgraded>;

/// Frames handed to one vectored write.
const BATCH: usize = 64;
/// How long a closing connection waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How a connection's one timer runs, and what it may hold.
pub(crate) struct Timing {
    /// How often the server pings.
    pub(crate) heartbeat: Duration,
    /// A client from which nothing arrives for this long is closed (4002).
    pub(crate) idle_timeout: Duration,
    /// The most bytes of protocol replies (pongs to the client's pings) held for a client that
    /// does not read them; past it the client is a slow consumer (4008).
    pub(crate) max_replies: usize,
}

/// A data message from the client.
pub(crate) enum Incoming<'m> {
    Text(&'m str),
    /// Only the conformance echo reads the bytes; the session refuses binary messages.
    Binary(#[cfg_attr(not(feature = "harness"), allow(dead_code))] &'m [u8]),
}

/// What the session made of a client's message.
pub(crate) enum Handled {
    /// Done; this is the reply to queue, if any.
    Reply(Option<ControlMessage>),
    /// Done when this completes (it queues its own reply).
    Later(BoxFuture<'static, ()>),
}

/// Drives one registered connection until it closes: writes what its mailbox holds, reads and
/// answers the client's frames (data messages through `on_message`), pings, and closes it when
/// asked, when it is idle, or when its rights end (the mailbox's
/// [`valid_until_ms`](Mailbox::valid_until_ms): its token's `exp`, moved by a refresh or a
/// re-authorization's deadline).
pub(crate) fn drive<'a>(
    socket: Socket,
    config: WebSocketConfig,
    mailbox: &'a Mailbox,
    hub: &'a Hub,
    timing: Timing,
    on_message: &'a mut (dyn FnMut(Incoming<'_>) -> Handled + Send),
) -> impl Future<Output = ()> + Send + 'a {
    // Built before the future: an `async fn` would keep its arguments' slots beside the
    // connection they were moved into, in every connection's task.
    let mut connection = Connection {
        socket,
        ws: WebSocketContext::new(Role::Server, Some(config)),
        replies: Vec::new(),
        unsent: Vec::new(),
        phase: Phase::Open,
        reading: Reading::Frames,
        mailbox,
        hub,
        on_message,
        pending: None,
        last_seen: now_ms(),
        next_ping: Instant::now() + timing.heartbeat,
        valid_until_ms: mailbox.valid_until_ms(),
        timing,
        deferred: false,
        shut_down: false,
        failure: None,
        rounds_written: 0,
    };
    async move {
        let timer = tokio::time::sleep_until(connection.next_tick());
        tokio::pin!(timer);
        poll_fn(|cx| connection.poll(cx, timer.as_mut())).await;
    }
}

/// Closes a connection that was never registered: the close frame, then a bounded wait for the
/// peer's answer.
pub(crate) async fn refuse(mut socket: Socket, config: WebSocketConfig, reason: CloseReason) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ws = WebSocketContext::new(Role::Server, Some(config));
    // tungstenite writes the close frame into the buffer; it reads nothing here.
    let mut frame = io::Cursor::new(Vec::new());
    let close = CloseFrame {
        code: reason.code.into(),
        reason: reason.reason.into(),
    };
    let _ = ws.close(&mut frame, Some(close));
    let _ = ws.flush(&mut frame);
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        socket.write_all(frame.get_ref()).await?;
        let mut scratch = [0u8; 256];
        while socket.read(&mut scratch).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

enum Phase {
    /// Events flow.
    Open,
    /// The close frame is queued or sent (or the peer's answered): no more events; waiting, at
    /// most the grace period, for the peer's close frame or the end of the stream.
    Closing,
}

enum Reading {
    /// Client frames, parsed by tungstenite.
    Frames,
    /// The stream broke off mid-frame (a protocol error, an oversized message): bytes are read
    /// and dropped until the peer closes, so that closing the socket with unread data does not
    /// reset the connection before the peer has read the close frame.
    Discarding,
    /// The peer sends nothing more: the close handshake is complete.
    Done,
}

struct Connection<'a> {
    socket: Socket,
    ws: WebSocketContext,
    /// Protocol frames tungstenite wrote (pongs, the close handshake) and heartbeat pings.
    replies: Vec<u8>,
    /// Frames the socket has not taken yet, the first perhaps partly written. Empty (and holding
    /// no memory) unless the client reads slower than events arrive.
    unsent: Vec<Bytes>,
    phase: Phase,
    reading: Reading,
    mailbox: &'a Mailbox,
    hub: &'a Hub,
    /// Answers a client's data message (the session's protocol).
    on_message: &'a mut (dyn FnMut(Incoming<'_>) -> Handled + Send),
    /// A message whose handling waits on the broker (a `subscribe` that resumes from the shared
    /// history): the client's next messages are read once it is done, so they are handled in
    /// order. Events and pings keep flowing meanwhile.
    pending: Option<BoxFuture<'static, ()>>,
    /// When the client last sent anything, in milliseconds since the epoch.
    last_seen: u64,
    /// When the next heartbeat is due.
    next_ping: Instant,
    /// The mailbox's `valid_until_ms` the timer was last set by.
    valid_until_ms: u64,
    timing: Timing,
    /// Whether this wake's write was put off once already (see [`Connection::poll_write`]).
    deferred: bool,
    /// Whether the server's side of TCP is closed (after a failure's close frame).
    shut_down: bool,
    /// The client broke the protocol: its close goes out once what was queued before is
    /// written (a drained close), or at the close grace's end if the client does not read.
    failure: Option<CloseReason>,
    /// The hub's delivery rounds at the last write.
    rounds_written: u64,
}

impl Connection<'_> {
    /// Does all the work there is; `Ready` once the connection is over.
    ///
    /// Before it returns `Pending`, every source of more work has this task's waker: the mailbox
    /// (registered first, so a frame queued while this runs is not missed), the socket (a read
    /// or a write that would block), and the timer.
    fn poll(&mut self, cx: &mut Context<'_>, mut timer: Pin<&mut Sleep>) -> Poll<()> {
        loop {
            if let Phase::Open = self.phase {
                self.mailbox.register(cx.waker());
                if let Some(reason) = self.mailbox.close_reason() {
                    self.begin_close(cx, reason);
                    timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                } else if self.mailbox.valid_until_ms() != self.valid_until_ms {
                    // A refresh or a re-authorization moved the end of its rights.
                    self.valid_until_ms = self.mailbox.valid_until_ms();
                    timer.as_mut().reset(self.next_tick());
                }
            }
            let read = match self.poll_read(cx) {
                Ok(progress) => progress,
                Err(Gone) => {
                    // The peer vanished without a close handshake: nothing more can be sent.
                    self.mailbox.close(close::NORMAL);
                    return Poll::Ready(());
                }
            };
            match self.poll_write(cx) {
                Poll::Ready(Err(err)) => {
                    tracing::debug!(%err, "write failed");
                    self.mailbox.close(close::PROTOCOL_ERROR);
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(())) => {
                    match (&self.phase, &self.reading) {
                        (Phase::Closing, Reading::Done) => return Poll::Ready(()),
                        // The connection failed (RFC 6455, 7.1.7) and its close frame is out:
                        // the server closes its side of TCP now, and reads on until the peer
                        // closes its own (closing with unread data would reset the connection,
                        // which can lose the close frame before the peer reads it).
                        (Phase::Closing, Reading::Discarding) if !self.shut_down => {
                            self.shut_down = true;
                            // Pending or failed: the grace period ends it either way.
                            let _ = Pin::new(&mut self.socket).poll_shutdown(cx);
                        }
                        _ => {}
                    }
                    // Everything queued is written: a close asked for after the drain begins
                    // (as a close of the mailbox, so that it is the reason counted).
                    if let Phase::Open = self.phase
                        && let Some(reason) = self.mailbox.drained_close_reason()
                        && self.mailbox.is_empty()
                    {
                        self.mailbox.close(reason);
                        continue;
                    }
                }
                Poll::Pending => {}
            }
            if read {
                if self.failure.is_some() {
                    // Reading failed just now (or the peer's end came after): a client that
                    // does not read what is queued is closed at the grace's end. Discarded
                    // bytes are no progress, so a client cannot put this off by sending.
                    timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                }
                // What was read may have asked for the close or ended the reading.
                continue;
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match self.phase {
                // A client that never reads again cannot take the close frame.
                Phase::Closing => return Poll::Ready(()),
                Phase::Open => {
                    self.tick(Instant::now());
                    timer.as_mut().reset(self.next_tick());
                }
            }
        }
    }

    /// The next heartbeat, or the end of the connection's rights if that comes first.
    fn next_tick(&self) -> Instant {
        let left = Duration::from_millis(self.valid_until_ms.saturating_sub(now_ms()));
        // Too far ahead for an `Instant` (an `exp` centuries away): never expires.
        Instant::now()
            .checked_add(left)
            .map_or(self.next_ping, |end| end.min(self.next_ping))
    }

    /// Timer time: close a connection whose rights ended or that is idle, or ping it when due.
    fn tick(&mut self, now: Instant) {
        if let Some(reason) = self.failure.take() {
            self.mailbox.close(reason);
        } else if now_ms() >= self.valid_until_ms {
            self.mailbox.close(close::TOKEN_EXPIRED);
        } else if now >= self.next_ping {
            self.next_ping = now + self.timing.heartbeat;
            if now_ms().saturating_sub(self.last_seen) > self.timing.idle_timeout.as_millis() as u64
            {
                self.mailbox.close(close::IDLE_TIMEOUT);
            } else {
                self.replies.extend_from_slice(frame::ping());
            }
        }
    }

    /// Stops taking events and queues the close frame (first reason wins). If the peer closed
    /// first, tungstenite has queued its answer already and sends no other.
    fn begin_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        self.phase = Phase::Closing;
        let frame = CloseFrame {
            code: reason.code.into(),
            reason: reason.reason.into(),
        };
        let mut io = Io {
            socket: &mut self.socket,
            cx,
            replies: &mut self.replies,
        };
        // Errors here only say the connection is already closed.
        let _ = self.ws.close(&mut io, Some(frame));
    }

    /// Reads and handles whatever the client sent; `Ok(true)` if that changed anything.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, Gone> {
        match self.reading {
            Reading::Done => Ok(false),
            Reading::Discarding => {
                let mut scratch = [0u8; 256];
                loop {
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut self.socket).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                            self.reading = Reading::Done;
                            return Ok(true);
                        }
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => {
                            self.reading = Reading::Done;
                            return Ok(true);
                        }
                        Poll::Pending => return Ok(false),
                    }
                }
            }
            Reading::Frames => {
                let mut progress = false;
                loop {
                    if let Some(pending) = &mut self.pending {
                        if pending.as_mut().poll(cx).is_pending() {
                            return Ok(progress);
                        }
                        self.pending = None;
                        progress = true;
                    }
                    let mut io = Io {
                        socket: &mut self.socket,
                        cx,
                        replies: &mut self.replies,
                    };
                    match self.ws.read(&mut io) {
                        Ok(message) => {
                            self.last_seen = now_ms();
                            self.on_message(message);
                            progress = true;
                            // tungstenite answers each ping at once, into `replies`: a client
                            // that pings and never reads would grow them without end.
                            if self.replies.len() > self.timing.max_replies
                                && let Phase::Open = self.phase
                            {
                                self.hub.close_slow_consumer(self.mailbox);
                                return Ok(true);
                            }
                        }
                        Err(WsError::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                            return Ok(progress);
                        }
                        // The close handshake is complete; tungstenite's answer is in `replies`.
                        Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                            self.reading = Reading::Done;
                            return Ok(true);
                        }
                        Err(
                            WsError::Io(_)
                            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                        ) => return Err(Gone),
                        Err(err) => {
                            tracing::debug!(%err, "read failed");
                            let reason = match err {
                                WsError::Capacity(_) => close::MESSAGE_TOO_BIG,
                                WsError::Utf8(_) => close::INVALID_PAYLOAD,
                                _ => close::PROTOCOL_ERROR,
                            };
                            // What is queued already (answers to the messages before the bad
                            // one among them) goes out first, then the close; the hub queues
                            // nothing more (see `Hub::fan_out`).
                            self.mailbox.close_when_drained(reason);
                            self.failure = Some(reason);
                            self.reading = Reading::Discarding;
                            return Ok(true);
                        }
                    }
                }
            }
        }
    }

    fn on_message(&mut self, message: Message) {
        let handled = match &message {
            Message::Text(text) => (self.on_message)(Incoming::Text(text)),
            Message::Binary(bytes) => (self.on_message)(Incoming::Binary(bytes)),
            Message::Close(_) => {
                self.mailbox.close(close::NORMAL);
                return;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return,
        };
        let reply = match handled {
            Handled::Reply(reply) => reply,
            Handled::Later(pending) => {
                self.pending = Some(pending);
                None
            }
        };
        // Replies queue behind the events already queued, like any frame.
        if let Some(reply) = reply
            && self.mailbox.push(Frame::text(&reply.to_json())).is_err()
        {
            // The client sends faster than it reads its replies.
            self.hub.close_slow_consumer(self.mailbox);
        }
    }

    /// Writes protocol replies and (while open) queued event frames until there are none left
    /// (`Ready(Ok)`) or the socket is full (`Pending`).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unsent.is_empty() {
            let written = ready!(write_frames(&mut self.socket, cx, &mut self.unsent))?;
            self.unsent.drain(..written);
        }
        // Whatever a burst grew is given back.
        self.unsent = Vec::new();
        // A connection woken with frames of several publishes queued (several delivery rounds
        // of the hub since its last write) is behind concurrent publishers, and one woken while
        // the rest of a batch is being delivered is ahead of it: either lets the scheduler run
        // once more before it writes, so that what is being delivered meanwhile lands in the
        // same write. Every write the kernel is spared is a segment each client is spared
        // reading. A lone event, or a lone batch once delivered, is written at once.
        let rounds = self.hub.rounds();
        let queued = self.mailbox.len();
        let behind_publishers = rounds > self.rounds_written + 1 && (2..BATCH).contains(&queued);
        let ahead_of_batch = self.hub.more_coming() && (1..BATCH).contains(&queued);
        if let Phase::Open = self.phase
            && !self.deferred
            && self.replies.is_empty()
            && (behind_publishers || ahead_of_batch)
        {
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.deferred = false;
        self.rounds_written = rounds;
        loop {
            let mut batch: [Bytes; BATCH] = std::array::from_fn(|_| Bytes::new());
            let mut count = 0;
            if !self.replies.is_empty() {
                batch[0] = Bytes::from(mem::take(&mut self.replies));
                count = 1;
            }
            // No event may follow a close frame: none is taken once the close is asked for.
            if let Phase::Open = self.phase
                && self.mailbox.close_reason().is_none()
            {
                count += self.mailbox.pop_into(&mut batch[count..]);
            }
            if count == 0 {
                return Poll::Ready(Ok(()));
            }
            let mut frames = &mut batch[..count];
            while !frames.is_empty() {
                match write_frames(&mut self.socket, cx, frames) {
                    Poll::Ready(Ok(written)) => frames = &mut frames[written..],
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {
                        self.unsent = frames.iter_mut().map(mem::take).collect();
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// The peer is gone without a close handshake.
struct Gone;

/// One vectored write of `frames`, in order. Returns how many were written whole; a partly
/// written one is advanced past what was written.
fn write_frames(
    socket: &mut Socket,
    cx: &mut Context<'_>,
    frames: &mut [Bytes],
) -> Poll<io::Result<usize>> {
    let mut written = if let [frame] = frames {
        // One frame (the usual case below saturation): a plain `send`, which costs the kernel
        // noticeably less than a one-element `writev`.
        ready!(Pin::new(&mut *socket).poll_write(cx, frame))?
    } else {
        let mut slices = [IoSlice::new(&[]); BATCH];
        let count = frames.len().min(BATCH);
        for (slice, frame) in slices.iter_mut().zip(&frames[..count]) {
            *slice = IoSlice::new(frame);
        }
        ready!(Pin::new(&mut *socket).poll_write_vectored(cx, &slices[..count]))?
    };
    if written == 0 {
        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
    }
    let mut whole = 0;
    while written > 0 {
        let len = frames[whole].len();
        if written < len {
            frames[whole].advance(written);
            break;
        }
        written -= len;
        whole += 1;
    }
    Poll::Ready(Ok(whole))
}

/// The socket as tungstenite's blocking-style `Read + Write` sees it: reads that would wait say
/// `WouldBlock` (and leave this task's waker with the socket); writes go to `replies`.
struct Io<'s, 'c, 'w> {
    socket: &'s mut Socket,
    cx: &'c mut Context<'w>,
    replies: &'s mut Vec<u8>,
}

impl Read for Io<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.socket).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Io<'_, '_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.replies.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
