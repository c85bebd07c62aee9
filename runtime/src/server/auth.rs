//! Connection authentication: JWTs (HS256 by default, RS256/ES256 public keys by configuration),
//! verified before the WebSocket upgrade.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::server::error::ApiError;

/// The key tokens are verified with.
#[derive(Clone)]
pub enum JwtKey {
    /// A shared HS256 secret.
    Hs256(Vec<u8>),
    /// An RS256 public key, PEM.
    Rs256PublicPem(Vec<u8>),
    /// An ES256 public key, PEM.
    Es256PublicPem(Vec<u8>),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            JwtKey::Hs256(_) => "JwtKey::Hs256(..)",
            JwtKey::Rs256PublicPem(_) => "JwtKey::Rs256PublicPem(..)",
            JwtKey::Es256PublicPem(_) => "JwtKey::Es256PublicPem(..)",
        })
    }
}

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The verification key (and so the one algorithm accepted).
    pub key: JwtKey,
    /// The claim holding the user id.
    pub user_claim: String,
    /// The claim holding the role name.
    pub role_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. A token is accepted, and its
    /// connection stays open, until `exp + leeway`; at that instant an open connection is closed
    /// (4001). One rule for both, so no token is accepted only to be closed at once.
    pub leeway_secs: u64,
    /// Accepted audiences: when not empty, a token must carry an `aud` naming one of them.
    pub audiences: Vec<String>,
    /// Accepted issuers: when not empty, a token's `iss` must be one of them.
    pub issuers: Vec<String>,
}

impl JwtConfig {
    /// HS256 with `sub` and `role` claims and 5 s of leeway.
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Self {
        JwtConfig {
            key: JwtKey::Hs256(secret.into()),
            user_claim: "sub".into(),
            role_claim: "role".into(),
            leeway_secs: 5,
            audiences: Vec::new(),
            issuers: Vec::new(),
        }
    }
}

/// Who a verified token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub` by default).
    pub user_id: String,
    /// The role's index in the catalog.
    pub role: u32,
    /// Until when the token is valid: its `exp` (which may have a fraction, as RFC 7519 allows)
    /// plus the leeway, in milliseconds since the Unix epoch, saturating at `u64::MAX`.
    pub valid_until_ms: u64,
    /// The token's id (`jti`), if it has one: what a revocation by token names.
    pub token_id: Option<String>,
    /// The login session the token belongs to (`sid`), if it says: what a revocation by
    /// session names.
    pub login_session: Option<String>,
    /// When the token was issued (`iat`, seconds since the Unix epoch), if it says.
    pub issued_at: Option<u64>,
}

/// Why a connection was refused (HTTP 401 with a JSON body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in `Authorization: Bearer` or the `token` query parameter.
    #[error("missing token: send `Authorization: Bearer <jwt>` or `?token=<jwt>`")]
    Missing,
    /// The token's signature, algorithm or encoding is wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// The token, its user or its login session was revoked (`POST /api/revocations`).
    #[error("token revoked: get a new one")]
    Revoked,
    /// A required claim is absent or not a string.
    #[error("token claim `{0}` is missing or not a string")]
    Claim(String),
    /// A required claim is present but unusable: `problem` says why (`exp` out of range ...).
    #[error("token claim `{claim}` {problem}")]
    ClaimValue {
        /// The claim.
        claim: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The role claim names no role of the catalog.
    #[error("unknown role `{0}`")]
    UnknownRole(String),
}

impl AuthError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Invalid(_) => "invalid_token",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::Revoked => "token_revoked",
            AuthError::Claim(_) | AuthError::ClaimValue { .. } => "invalid_claims",
            AuthError::UnknownRole(_) => "unknown_role",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, err.code(), err.to_string())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// Verifies tokens against one key and maps them onto the catalog's roles.
pub struct Authenticator {
    catalog: &'static Catalog,
    key: DecodingKey,
    validation: Validation,
    user_claim: String,
    role_claim: String,
    leeway_ms: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// A key that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the JWT key: {0}")]
pub struct KeyError(String);

impl KeyError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        KeyError(message.into())
    }
}

impl Authenticator {
    /// Loads the key; a malformed PEM is an error here, not at the first connection.
    pub fn new(catalog: &'static Catalog, config: &JwtConfig) -> Result<Self, KeyError> {
        let (key, algorithm) = match &config.key {
            JwtKey::Hs256(secret) => (DecodingKey::from_secret(secret), Algorithm::HS256),
            JwtKey::Rs256PublicPem(pem) => (
                DecodingKey::from_rsa_pem(pem).map_err(|e| KeyError(e.to_string()))?,
                Algorithm::RS256,
            ),
            JwtKey::Es256PublicPem(pem) => (
                DecodingKey::from_ec_pem(pem).map_err(|e| KeyError(e.to_string()))?,
                Algorithm::ES256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway_secs;
        // `exp` is checked by `verify` itself, with its fraction, by the same rule that closes an
        // open connection; jsonwebtoken only makes sure it is present and numeric.
        validation.validate_exp = false;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        validation.validate_aud = !config.audiences.is_empty();
        if validation.validate_aud {
            validation.set_audience(&config.audiences);
            required.push("aud");
        }
        if !config.issuers.is_empty() {
            validation.set_issuer(&config.issuers);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator {
            catalog,
            key,
            validation,
            user_claim: config.user_claim.clone(),
            role_claim: config.role_claim.clone(),
            leeway_ms: config.leeway_secs.saturating_mul(1000),
        })
    }

    /// Checks signature, algorithm, `exp`, `nbf`, the user claim and the role claim.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|err| match err.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::MissingRequiredClaim(claim) => missing_claim(token, claim),
            ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
            ErrorKind::InvalidAudience => {
                AuthError::Invalid("its `aud` names no audience this server accepts".into())
            }
            ErrorKind::InvalidIssuer => {
                AuthError::Invalid("its `iss` is not an issuer this server accepts".into())
            }
            ErrorKind::InvalidAlgorithm => AuthError::Invalid(format!(
                "algorithm not accepted (expected {:?})",
                self.validation.algorithms
            )),
            _ => AuthError::Invalid(err.to_string()),
        })?;
        let claims = data.claims;
        // Present and a non-negative number: jsonwebtoken checked that much.
        let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
        // `as` saturates: an `exp` beyond u64 milliseconds never expires, and never overflows.
        let valid_until_ms = ((exp * 1000.0) as u64).saturating_add(self.leeway_ms);
        if crate::server::publication::now_ms() >= valid_until_ms {
            return Err(AuthError::Expired);
        }
        let string = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| AuthError::Claim(name.to_owned()))
        };
        let user_id = string(&self.user_claim)?.to_owned();
        let role_name = string(&self.role_claim)?;
        let role = self
            .catalog
            .role_index(role_name)
            .ok_or_else(|| AuthError::UnknownRole(role_name.to_owned()))?;
        let optional = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(Identity {
            user_id,
            role,
            valid_until_ms,
            token_id: optional("jti"),
            login_session: optional("sid"),
            issued_at: claims.get("iat").and_then(Value::as_f64).map(|t| t as u64),
        })
    }
}

/// Why jsonwebtoken found a required claim missing: it reads `exp` as a whole number of seconds
/// from 0 to 2^64 - 1, so a negative, fractional-overflowing or huge `exp` is "missing" to it.
/// Called once the signature is verified (jsonwebtoken checks it before the claims), so reading
/// the claims here trusts nothing unverified.
fn missing_claim(token: &str, claim: &str) -> AuthError {
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token);
    let value = claims.ok().and_then(|mut claims| claims.remove(claim));
    let problem = match (claim, value) {
        (_, None | Some(Value::Null)) => "is missing".to_owned(),
        ("exp" | "nbf", Some(Value::Number(n))) => format!(
            "is out of range ({n}): a time in seconds since 1970, from 0 to {}",
            u64::MAX
        ),
        ("exp" | "nbf", Some(_)) => "is not a number of seconds since 1970".to_owned(),
        (_, Some(_)) => "has the wrong type".to_owned(),
    };
    AuthError::ClaimValue {
        claim: claim.to_owned(),
        problem,
    }
}

/// Mints an HS256 token (`omnicast token`, tests): `sub`, `role`, `iat` and `exp = now + ttl`.
pub fn mint_hs256(secret: &[u8], user_id: &str, role: &str, ttl_secs: u64) -> String {
    let now = crate::server::publication::now_ms() / 1000;
    let claims = json!({ "sub": user_id, "role": role, "iat": now, "exp": now + ttl_secs });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}
