//! Revocations: a user (all their tokens, or those issued before a time), a login session (the
//! tokens' `sid`) or one token (`jti`) loses access now. A revoked token is refused at the
//! handshake (401 `token_revoked`) until the revocation lapses, and the live connections it
//! matches are closed with 4003. A revocation lapses once no token it could match can still be
//! valid: `--max-token-lifetime-secs` after it was made.
//!
//! Re-authorization requests are kept beside them until their deadline: a connection of the
//! user opened meanwhile with a token older than the request is asked too.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::server::auth::Identity;
use crate::server::publication::now_ms;

/// What one revocation names. At least one of `user_id`, `login_session`, `token_id`; when
/// several are given, a token must match all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revocation {
    /// Every token of this user (the user claim)...
    #[serde(default)]
    pub user_id: Option<String>,
    /// ...issued before this time (seconds since the Unix epoch; a token without `iat` counts
    /// as issued before any time), when given.
    #[serde(default)]
    pub issued_before: Option<u64>,
    /// Every token of this login session (`sid`).
    #[serde(default)]
    pub login_session: Option<String>,
    /// The token with this id (`jti`).
    #[serde(default)]
    pub token_id: Option<String>,
}

/// A request that a user's connections re-authorize (`POST /api/reauthorizations`): each must
/// refresh with a token issued at `asked_ms` or later before the deadline it is kept until.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reauthorization {
    /// The user whose rights changed.
    pub user_id: String,
    /// When it was asked for (ms since the Unix epoch): also what tells it from another request.
    pub asked_ms: u64,
}

/// What the nodes share about rights, each kept until a time: a revocation, or a
/// re-authorization request (with Redis, the entries of one hash and one channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RightsChange {
    /// Ask a user's connections for a fresher token.
    Reauthorize {
        /// The request.
        reauthorize: Reauthorization,
    },
    /// Revoke tokens.
    Revoke(Revocation),
}

/// What a token says that a revocation can name: a view of an [`Identity`] or of what a live
/// connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The token's `jti`.
    pub token_id: Option<&'a str>,
    /// The token's `sid`.
    pub login_session: Option<&'a str>,
    /// The token's `iat`.
    pub issued_at: Option<u64>,
}

impl<'a> From<&'a Identity> for Credentials<'a> {
    fn from(identity: &'a Identity) -> Self {
        Credentials {
            user_id: &identity.user_id,
            token_id: identity.token_id.as_deref(),
            login_session: identity.login_session.as_deref(),
            issued_at: identity.issued_at,
        }
    }
}

impl Revocation {
    /// Whether it names anything at all.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none() && self.login_session.is_none() && self.token_id.is_none()
    }

    /// Whether a token with `credentials` is revoked by this.
    pub fn matches(&self, credentials: &Credentials<'_>) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        !self.is_empty()
            && self
                .user_id
                .as_ref()
                .is_none_or(|u| *u == credentials.user_id)
            && self
                .issued_before
                .is_none_or(|before| credentials.issued_at.is_none_or(|iat| iat < before))
            && same(&self.login_session, credentials.login_session)
            && same(&self.token_id, credentials.token_id)
    }
}

/// This node's revocations and re-authorization requests in force. What the live connections
/// hold is on their mailboxes ([`Mailbox::revoked_by`](crate::server::mailbox::Mailbox::revoked_by)).
#[derive(Debug, Default)]
pub struct Revocations {
    /// Each revocation with when it lapses (ms since the Unix epoch).
    revoked: Mutex<Vec<(Revocation, u64)>>,
    /// Re-authorization requests with their deadlines (ms since the Unix epoch).
    reauthorizations: Mutex<Vec<(Reauthorization, u64)>>,
}

impl Revocations {
    /// Records `revocation` until `until_ms`. Recorded before the live connections are
    /// scanned: a connection that starts holding its token meanwhile is either scanned or finds
    /// the revocation when its session checks after holding it (`session.rs`).
    pub fn add(&self, revocation: Revocation, until_ms: u64) {
        let now = now_ms();
        let mut revoked = self.revoked.lock().expect("revocations lock");
        revoked.retain(|(_, until)| *until > now);
        if !revoked.iter().any(|(r, _)| *r == revocation) {
            revoked.push((revocation, until_ms));
        }
    }

    /// Whether a token with `credentials` is revoked now.
    pub fn refuses(&self, credentials: &Credentials<'_>) -> bool {
        let now = now_ms();
        let revoked = self.revoked.lock().expect("revocations lock");
        revoked
            .iter()
            .any(|(r, until)| *until > now && r.matches(credentials))
    }

    /// Keeps `request` until `deadline_ms`, for connections opened meanwhile.
    pub fn add_reauthorization(&self, request: Reauthorization, deadline_ms: u64) {
        let now = now_ms();
        let mut requests = self.reauthorizations.lock().expect("revocations lock");
        requests.retain(|(_, deadline)| *deadline > now);
        if !requests.iter().any(|(r, _)| *r == request) {
            requests.push((request, deadline_ms));
        }
    }

    /// The latest request (and its deadline) that a token of `user_id` issued at `issued_at`
    /// (seconds) has not answered, if one is in force.
    pub fn reauthorization_for(
        &self,
        user_id: &str,
        issued_at: Option<u64>,
    ) -> Option<(Reauthorization, u64)> {
        let now = now_ms();
        let requests = self.reauthorizations.lock().expect("revocations lock");
        requests
            .iter()
            .filter(|(r, deadline)| {
                *deadline > now
                    && r.user_id == user_id
                    && issued_at.is_none_or(|iat| iat < r.asked_ms / 1000)
            })
            .max_by_key(|(r, _)| r.asked_ms)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials<'a>(
        user: &'a str,
        jti: Option<&'a str>,
        sid: Option<&'a str>,
        iat: Option<u64>,
    ) -> Credentials<'a> {
        Credentials {
            user_id: user,
            token_id: jti,
            login_session: sid,
            issued_at: iat,
        }
    }

    #[test]
    fn a_revocation_matches_what_it_names_and_nothing_else() {
        let by_user = Revocation {
            user_id: Some("u1".into()),
            issued_before: None,
            login_session: None,
            token_id: None,
        };
        assert!(by_user.matches(&credentials("u1", None, None, None)));
        assert!(!by_user.matches(&credentials("u2", None, None, None)));
        let before = Revocation {
            issued_before: Some(100),
            ..by_user.clone()
        };
        assert!(before.matches(&credentials("u1", None, None, Some(99))));
        assert!(!before.matches(&credentials("u1", None, None, Some(100))));
        assert!(
            before.matches(&credentials("u1", None, None, None)),
            "no iat: revoked"
        );
        let by_token = Revocation {
            user_id: None,
            issued_before: None,
            login_session: None,
            token_id: Some("t1".into()),
        };
        assert!(by_token.matches(&credentials("anyone", Some("t1"), None, None)));
        assert!(!by_token.matches(&credentials("anyone", Some("t2"), None, None)));
        assert!(!by_token.matches(&credentials("anyone", None, None, None)));
        let by_session = Revocation {
            token_id: None,
            login_session: Some("s1".into()),
            ..by_token
        };
        assert!(by_session.matches(&credentials("x", None, Some("s1"), None)));
        assert!(!by_session.matches(&credentials("x", None, Some("s2"), None)));
        let nothing = Revocation {
            login_session: None,
            ..by_session
        };
        assert!(nothing.is_empty() && !nothing.matches(&credentials("x", None, None, None)));
    }

    #[test]
    fn revocations_lapse() {
        let revocations = Revocations::default();
        let r = Revocation {
            user_id: Some("u1".into()),
            issued_before: None,
            login_session: None,
            token_id: None,
        };
        revocations.add(r.clone(), now_ms() + 60_000);
        assert!(revocations.refuses(&credentials("u1", None, None, None)));
        assert!(!revocations.refuses(&credentials("u2", None, None, None)));
        let lapsed = Revocations::default();
        lapsed.add(r, now_ms().saturating_sub(1));
        assert!(!lapsed.refuses(&credentials("u1", None, None, None)));
    }
}
