//! Typed emission: the broadcast options of the reference and the sink events are handed to.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::event::{ComputeError, Event, OutgoingEvent};
use crate::options::EmitOptions;
use crate::role::RoleMask;

/// A namespace of a generated catalog: its `Namespace` enum implements this. The typed emitter's
/// `in_namespace` takes nothing else, so a misspelt namespace is a compile error rather than an
/// event delivered to nobody.
pub trait CatalogNamespace: Copy {
    /// The namespace's wire name.
    fn name(self) -> &'static str;
}

/// Where emitted events go: the runtime's hub or broker, or a test's collector.
pub trait EventSink {
    /// What publishing returns (an event id, an error, or nothing).
    type Output;

    /// Takes one ready event. Must not block: a sink that does I/O hands the event to a task.
    fn publish(&self, event: OutgoingEvent) -> Self::Output;

    /// What [`Emit::send`] returns for a payload that cannot be sent: one of its computed fields
    /// overflows (its inputs were changed after `new` checked them). Nothing is published.
    fn refuse(&self, error: ComputeError) -> Self::Output;
}

impl<S: EventSink + ?Sized> EventSink for &S {
    type Output = S::Output;
    fn publish(&self, event: OutgoingEvent) -> S::Output {
        (**self).publish(event)
    }
    fn refuse(&self, error: ComputeError) -> S::Output {
        (**self).refuse(error)
    }
}

impl<S: EventSink + ?Sized> EventSink for Arc<S> {
    type Output = S::Output;
    fn publish(&self, event: OutgoingEvent) -> S::Output {
        (**self).publish(event)
    }
    fn refuse(&self, error: ComputeError) -> S::Output {
        (**self).refuse(error)
    }
}

/// One event on its way out: set options, then [`send`](Emit::send).
#[must_use = "an event is only published by `.send()`"]
pub struct Emit<'s, S: ?Sized, E> {
    sink: &'s S,
    payload: E,
    options: EmitOptions,
    timestamp: Option<u64>,
    _event: PhantomData<fn() -> E>,
}

impl<'s, S: EventSink + ?Sized, E: Event> Emit<'s, S, E> {
    /// Starts an emission of `payload` into `sink`, with no options.
    pub fn new(sink: &'s S, payload: E) -> Self {
        Emit {
            sink,
            payload,
            options: EmitOptions::default(),
            timestamp: None,
            _event: PhantomData,
        }
    }

    /// Only these roles (never more than the event allows).
    pub fn to_roles<R: Into<RoleMask>>(mut self, roles: impl IntoIterator<Item = R>) -> Self {
        self.options.roles = Some(roles.into_iter().collect());
        self
    }

    /// Only these users (each still subject to role and ownership rules).
    pub fn to_users<U: Into<String>>(mut self, user_ids: impl IntoIterator<Item = U>) -> Self {
        self.options.user_ids = Some(user_ids.into_iter().map(Into::into).collect());
        self
    }

    /// Never these users.
    pub fn exclude_users<U: Into<String>>(mut self, user_ids: impl IntoIterator<Item = U>) -> Self {
        self.options
            .exclude_user_ids
            .extend(user_ids.into_iter().map(Into::into));
        self
    }

    /// Never these connections (session ids).
    pub fn exclude_sessions<U: Into<String>>(
        mut self,
        session_ids: impl IntoIterator<Item = U>,
    ) -> Self {
        self.options
            .exclude_session_ids
            .extend(session_ids.into_iter().map(Into::into));
        self
    }

    /// Address another namespace's subscribers.
    pub fn in_namespace(mut self, namespace: impl CatalogNamespace) -> Self {
        self.options.namespace = Some(namespace.name());
        self
    }

    /// Sets the envelope timestamp (ms since the Unix epoch); by default the server sets it.
    pub fn at(mut self, timestamp_ms: u64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// The options set so far.
    pub fn options(&self) -> &EmitOptions {
        &self.options
    }

    /// Computes the payload's derived fields, serializes it once and publishes it; a payload
    /// whose computed field overflows goes to [`EventSink::refuse`] instead.
    pub fn send(self) -> S::Output {
        match OutgoingEvent::new(self.payload, self.options) {
            Ok(mut event) => {
                event.timestamp = self.timestamp;
                self.sink.publish(event)
            }
            Err(err) => self.sink.refuse(err),
        }
    }
}
