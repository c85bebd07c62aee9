//! Revocations: a user (all their tokens, or those issued before a time), a login session (the
//! tokens' `sid`) or one token (`jti`) loses access now. A revoked token is refused at the
//! handshake (401 `token_revoked`) until the revocation lapses, and the live connections it
//! matches are closed with 4003. A revocation lapses once no token it could match can still be
//! valid: `--max-token-lifetime-secs` after it was made.
//!
//! Re-authorization requests are kept beside them until their deadline: a connection of the
//! user opened meanwhile with a token older than the request is asked too.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::server::auth::Identity;
use crate::server::publication::now_ms;
use crate::server::shrink::Shrink;

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

/// What a connection was opened with, for matching revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user_id: String,
    /// The token's `jti`.
    pub token_id: Option<String>,
    /// The token's `sid`.
    pub login_session: Option<String>,
    /// The token's `iat`.
    pub issued_at: Option<u64>,
}

impl From<&Identity> for Credentials {
    fn from(identity: &Identity) -> Self {
        Credentials {
            user_id: identity.user_id.clone(),
            token_id: identity.token_id.clone(),
            login_session: identity.login_session.clone(),
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
    pub fn matches(&self, credentials: &Credentials) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        !self.is_empty()
            && self
                .user_id
                .as_ref()
                .is_none_or(|u| *u == credentials.user_id)
            && self
                .issued_before
                .is_none_or(|before| credentials.issued_at.is_none_or(|iat| iat < before))
            && same(&self.login_session, &credentials.login_session)
            && same(&self.token_id, &credentials.token_id)
    }
}

/// This node's revocations in force, and what its live connections were opened with.
#[derive(Debug, Default)]
pub struct Revocations {
    /// Each revocation with when it lapses (ms since the Unix epoch).
    revoked: Mutex<Vec<(Revocation, u64)>>,
    /// Live connections by session id.
    live: Mutex<HashMap<String, Credentials>>,
    /// Re-authorization requests with their deadlines (ms since the Unix epoch).
    reauthorizations: Mutex<Vec<(Reauthorization, u64)>>,
}

impl Revocations {
    /// Records `revocation` until `until_ms`; returns the session ids of the live connections
    /// it matches (to be closed).
    pub fn add(&self, revocation: Revocation, until_ms: u64) -> Vec<String> {
        let now = now_ms();
        let mut revoked = self.revoked.lock().expect("revocations lock");
        revoked.retain(|(_, until)| *until > now);
        if !revoked.iter().any(|(r, _)| *r == revocation) {
            revoked.push((revocation.clone(), until_ms));
        }
        drop(revoked);
        // Recorded first, scanned second: a connection tracked meanwhile is either scanned here
        // or finds the revocation when its session checks after tracking (`session.rs`).
        let live = self.live.lock().expect("revocations lock");
        live.iter()
            .filter(|(_, credentials)| revocation.matches(credentials))
            .map(|(session, _)| session.clone())
            .collect()
    }

    /// Whether a token with `credentials` is revoked now.
    pub fn refuses(&self, credentials: &Credentials) -> bool {
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

    /// A connection opened with `credentials` under `session_id`.
    pub fn track(&self, session_id: &str, credentials: Credentials) {
        let mut live = self.live.lock().expect("revocations lock");
        live.insert(session_id.to_owned(), credentials);
    }

    /// The connection `session_id` ended.
    pub fn untrack(&self, session_id: &str) {
        let mut live = self.live.lock().expect("revocations lock");
        live.remove(session_id);
        live.shrink_when_sparse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(
        user: &str,
        jti: Option<&str>,
        sid: Option<&str>,
        iat: Option<u64>,
    ) -> Credentials {
        Credentials {
            user_id: user.into(),
            token_id: jti.map(Into::into),
            login_session: sid.map(Into::into),
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
    fn revocations_lapse_and_name_the_live_sessions_they_close() {
        let revocations = Revocations::default();
        revocations.track("ses-1", credentials("u1", None, None, None));
        revocations.track("ses-2", credentials("u2", None, None, None));
        let r = Revocation {
            user_id: Some("u1".into()),
            issued_before: None,
            login_session: None,
            token_id: None,
        };
        assert_eq!(revocations.add(r.clone(), now_ms() + 60_000), ["ses-1"]);
        assert!(revocations.refuses(&credentials("u1", None, None, None)));
        assert!(!revocations.refuses(&credentials("u2", None, None, None)));
        let lapsed = Revocations::default();
        lapsed.add(r, now_ms().saturating_sub(1));
        assert!(!lapsed.refuses(&credentials("u1", None, None, None)));
    }
}
