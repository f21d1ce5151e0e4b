//! Authentication: password hashing (argon2), opaque tokens (only their SHA-256 is
//! stored), the [`Principal`] extractor that every protected handler takes, CSRF for
//! cookie-authenticated writes, and the login rate limiters.
//!
//! Two kinds of bearer secret exist, told apart by prefix: console sessions
//! (`pls_…`, from login, also sent as the `parley_session` cookie) and API tokens
//! (`plt_…`, for integrations). Both are checked against the database on every request,
//! joined on the user being active, so logout, revocation and deactivation take effect
//! at once.

use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::domain::Role;
use crate::error::{ApiError, ErrorCode};
use crate::startup::AppState;
use crate::store::users::UserRow;
use crate::store::{api_tokens, now_ms, sessions};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "parley_session";
/// Header that cookie-authenticated writes must carry.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// Prefix of console session tokens.
pub const SESSION_PREFIX: &str = "pls_";
/// Prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "plt_";

/// Hash a password with argon2id and a random salt (CPU-heavy: runs off the reactor).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Check a password against a stored PHC string (CPU-heavy: runs off the reactor).
pub async fn verify_password(password: String, phc: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
        Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// A fresh random secret with a kind prefix, e.g. `pls_…` (32 random bytes).
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A fresh random CSRF token (hex).
pub fn new_csrf_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a token, hex: what the database stores and looks up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compare two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a request was authenticated.
#[derive(Debug, Clone)]
pub enum AuthVia {
    /// A console session (bearer or cookie).
    Session {
        /// Session id (for logout).
        session_id: String,
    },
    /// An API token.
    ApiToken {
        /// Token id.
        token_id: String,
    },
}

/// The authenticated user of a request. Taking it as a handler argument makes the
/// handler require authentication (401 otherwise) and, for cookie-authenticated
/// writes, a matching CSRF header (403 otherwise).
#[derive(Debug, Clone)]
pub struct Principal {
    /// The active user.
    pub user: UserRow,
    /// How they authenticated.
    pub via: AuthVia,
}

impl Principal {
    /// The workspace every query of this request is scoped to.
    pub fn workspace_id(&self) -> &str {
        &self.user.workspace_id
    }

    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// An audit entry for a change this user made in their workspace.
    pub fn audit<'a>(
        &'a self,
        action: &'a str,
        target_type: &'a str,
        target_id: &'a str,
        details: serde_json::Value,
    ) -> crate::store::audit::Entry<'a> {
        crate::store::audit::Entry {
            workspace_id: self.workspace_id(),
            actor_id: Some(&self.user.id),
            action,
            target_type,
            target_id,
            details,
        }
    }

    /// 403 unless the user is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this action needs the admin role"))
        }
    }
}

/// The secret a request presents: bearer header first, then the cookie.
fn presented_token(req: &HttpRequest) -> Option<(String, bool)> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some((token.trim().to_owned(), false));
    }
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        return Some((c.value().to_owned(), true));
    }
    // Browsers cannot set headers on a WebSocket: sockets may pass `?token=`.
    if req.path().starts_with("/ws/") {
        return web::Query::<std::collections::HashMap<String, String>>::from_query(
            req.query_string(),
        )
        .ok()
        .and_then(|q| q.get("token").cloned())
        .map(|t| (t, false));
    }
    None
}

/// A cookie-authenticated WebSocket must come from a page of this server (the
/// `Origin` host equals `Host`): otherwise any site could open a socket with the
/// agent's cookie (cross-site WebSocket hijacking).
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return true;
    };
    let host = req.connection_info().host().to_owned();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, h)| h.to_owned()))
        .is_some_and(|h| h == host)
}

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| anyhow::anyhow!("AppState missing"))?
                .clone();
            let unauthorized = || {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing, invalid or expired credentials",
                )
            };
            let (token, from_cookie) = presented_token(&req).ok_or_else(unauthorized)?;
            let hash = token_hash(&token);
            if token.starts_with(SESSION_PREFIX) {
                // Every console request passes here: on PostgreSQL on the database's
                // runtime (`Db::run`), not on this HTTP worker.
                let (reader, key) = (state.db.reader().clone(), hash);
                let auth = state
                    .db
                    .run(async move { sessions::authenticate(&reader, &key).await })
                    .await?
                    .ok_or_else(unauthorized)?;
                if from_cookie && req.path().starts_with("/ws/") && !same_origin(&req) {
                    return Err(ApiError::forbidden(
                        "cookie-authenticated sockets must come from this server's pages",
                    ));
                }
                if from_cookie && !is_safe_method(req.method()) {
                    let sent = req
                        .headers()
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if !constant_time_eq(sent, &auth.csrf_token) {
                        return Err(ApiError::new(
                            ErrorCode::CsrfFailed,
                            format!(
                                "cookie-authenticated writes need the {CSRF_HEADER} header from login"
                            ),
                        ));
                    }
                }
                Ok(Principal {
                    user: auth.user,
                    via: AuthVia::Session {
                        session_id: auth.session_id,
                    },
                })
            } else if token.starts_with(API_TOKEN_PREFIX) && !from_cookie {
                let (reader, key) = (state.db.reader().clone(), hash);
                let (token_id, last_used, user) = state
                    .db
                    .run(async move { api_tokens::authenticate(&reader, &key).await })
                    .await?
                    .ok_or_else(unauthorized)?;
                if last_used.is_none_or(|t| now_ms() - t > 60_000) {
                    api_tokens::touch(state.db.pool(), &token_id).await?;
                }
                Ok(Principal {
                    user,
                    via: AuthVia::ApiToken { token_id },
                })
            } else {
                Err(unauthorized())
            }
        })
    }
}

/// The client's address, honouring proxy headers only when configured to.
pub fn client_ip(req: &HttpRequest, trust_proxy_headers: bool) -> String {
    let forwarded = || {
        let info = req.connection_info();
        let addr = info.realip_remote_addr()?;
        addr.parse::<IpAddr>()
            .ok()
            .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    };
    if trust_proxy_headers && let Some(ip) = forwarded() {
        return ip.to_string();
    }
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Login attempt limits, per client IP and per account (email), with governor.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<String>,
    per_account: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter")
    }
}

impl LoginLimiter {
    /// Limits of `per_ip` and `per_account` attempts a minute (burst = the same).
    pub fn new(per_ip: u32, per_account: u32) -> Arc<Self> {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Arc::new(Self {
            per_ip: RateLimiter::keyed(quota(per_ip)),
            per_account: RateLimiter::keyed(quota(per_account)),
        })
    }

    /// Take one attempt for this IP and account, or say how long to wait.
    pub fn check(&self, ip: &str, account: &str) -> Result<(), Duration> {
        let now = DefaultClock::default().now();
        self.per_ip
            .check_key(&ip.to_owned())
            .map_err(|nu| nu.wait_time_from(now))?;
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|nu| nu.wait_time_from(now))?;
        Ok(())
    }

    /// Forget keys whose limits have fully recovered (bounded memory).
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let phc = hash_password("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse".into(), phc).await.unwrap());
    }

    #[test]
    fn tokens_are_prefixed_unique_and_hashed() {
        let a = new_token(SESSION_PREFIX);
        let b = new_token(SESSION_PREFIX);
        assert!(a.starts_with("pls_") && a.len() > 40);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn the_limiter_refuses_past_the_quota_per_key() {
        let l = LoginLimiter::new(100, 2);
        assert!(l.check("1.1.1.1", "a@x").is_ok());
        assert!(l.check("1.1.1.1", "a@x").is_ok());
        let wait = l.check("1.1.1.1", "a@x").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(l.check("1.1.1.1", "b@x").is_ok());
    }
}
