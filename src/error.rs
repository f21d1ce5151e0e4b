//! HTTP errors: one table maps each error code to its status and title, and every error
//! leaves as `application/problem+json` (RFC 9457):
//! `{"type","title","status","detail","code"}`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Every error code the HTTP API can answer with. The table in [`ErrorCode::status`] is
/// the single place a code gets its status; `tests/api/errors.rs` fails when a code is
/// never produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// The JSON is well-formed but a field is missing, of the wrong type or invalid.
    ValidationFailed,
    /// The body is larger than `server.max_body_bytes`.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// No valid credentials (missing, expired or revoked token).
    Unauthorized,
    /// Wrong email or password (deliberately not saying which).
    InvalidCredentials,
    /// A widget visitor's identity hash is not the HMAC of the email under the
    /// channel's identity secret.
    InvalidIdentity,
    /// Authenticated, but the role does not allow this.
    Forbidden,
    /// A cookie-authenticated write without the right CSRF header.
    CsrfFailed,
    /// No such record in this workspace (or not visible to this user).
    NotFound,
    /// The change conflicts with existing state (a taken email, the last admin).
    Conflict,
    /// Too many attempts; see `Retry-After`.
    RateLimited,
    /// A dependency (database, Redis) does not answer.
    Unavailable,
    /// A bug or an unexpected failure; logged with the request id.
    Internal,
}

impl ErrorCode {
    /// Every code, for the "each code is used" test and the docs.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidJson,
        ErrorCode::ValidationFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidCredentials,
        ErrorCode::InvalidIdentity,
        ErrorCode::Forbidden,
        ErrorCode::CsrfFailed,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The table: code → (HTTP status, title).
    pub fn status_and_title(self) -> (StatusCode, &'static str) {
        use ErrorCode::*;
        match self {
            InvalidJson => (StatusCode::BAD_REQUEST, "Malformed JSON"),
            ValidationFailed => (StatusCode::BAD_REQUEST, "Invalid request"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content type must be application/json",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "Authentication required"),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "Invalid email or password"),
            InvalidIdentity => (StatusCode::UNAUTHORIZED, "Invalid visitor identity"),
            Forbidden => (StatusCode::FORBIDDEN, "Not allowed"),
            CsrfFailed => (StatusCode::FORBIDDEN, "Missing or wrong CSRF token"),
            NotFound => (StatusCode::NOT_FOUND, "Not found"),
            Conflict => (StatusCode::CONFLICT, "Conflict"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        }
    }

    /// The snake_case spelling.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            ValidationFailed => "validation_failed",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid_credentials",
            InvalidIdentity => "invalid_identity",
            Forbidden => "forbidden",
            CsrfFailed => "csrf_failed",
            NotFound => "not_found",
            Conflict => "conflict",
            RateLimited => "rate_limited",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }
}

/// A problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:parley:error:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short, fixed summary of the code.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The error code (snake_case), the same as the end of `type`.
    pub code: ErrorCode,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field is missing, of the wrong type, or not valid.
    #[error("{0}")]
    Validation(String),
    /// Any other client error with its code and detail.
    #[error("{detail}")]
    Client {
        /// Which code.
        code: ErrorCode,
        /// What went wrong.
        detail: String,
    },
    /// Too many attempts.
    #[error("too many attempts, retry in {}s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// Something we did not expect: logged in full, answered as 500 without detail.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// A client error with a code and a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::Client {
            code,
            detail: detail.into(),
        }
    }

    /// 404 for a kind of record (the same answer whether it does not exist or is not
    /// visible, so ids from other workspaces reveal nothing).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 403 with a reason.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    /// 409 with a reason.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    /// The code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::Client { code, .. } => *code,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unexpected(_) => ErrorCode::Internal,
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        let (status, title) = code.status_and_title();
        let detail = match self {
            ApiError::Unexpected(_) => "an unexpected error occurred; it has been logged".into(),
            other => other.to_string(),
        };
        Problem {
            type_: format!("urn:parley:error:{}", code.as_str()),
            title,
            status: status.as_u16(),
            detail,
            code,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Unexpected(anyhow::Error::new(e))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status_and_title().0
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unexpected(e) = self {
            tracing::error!(error = ?e, "Unexpected error while handling a request");
        }
        let problem = self.problem();
        let mut res = HttpResponse::build(self.status_code());
        res.content_type("application/problem+json");
        if let ApiError::RateLimited { retry_after } = self {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                res.insert_header((header::RETRY_AFTER, v));
            }
        }
        metrics::counter!("parley_http_errors_total", "code" => problem.code.as_str()).increment(1);
        res.json(problem)
    }
}

/// Map a query-string extractor failure.
pub fn query_error(err: actix_web::error::QueryPayloadError) -> ApiError {
    ApiError::Validation(format!("query string: {err}"))
}

/// Map a path extractor failure.
pub fn path_error(err: actix_web::error::PathError) -> ApiError {
    ApiError::Validation(format!("path: {err}"))
}

/// Convenience alias for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_spelling_matching_serde() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn unexpected_errors_do_not_leak_detail() {
        let e = ApiError::from(anyhow::anyhow!("password=hunter2 in connection string"));
        let p = e.problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("hunter2"));
    }
}
