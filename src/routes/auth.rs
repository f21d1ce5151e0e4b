//! Login, logout, and "who am I".

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::users::UserView;
use crate::auth::{self, AuthVia, Principal};
use crate::domain::EmailAddress;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::startup::AppState;
use crate::store::{now_ms, sessions, users};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(login).service(logout).service(me);
}

/// Login credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email.
    pub email: String,
    /// The password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for this session (also set as the `parley_session` cookie).
    pub token: String,
    /// Send this in the header named by `csrf_header` with cookie-authenticated writes.
    pub csrf_token: String,
    /// Always `X-CSRF-Token`.
    pub csrf_header: &'static str,
    /// When the session ends.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The logged-in user.
    pub user: UserView,
}

/// Log in with email and password. Rate-limited per client IP and per account; a wrong
/// email and a wrong password get the same answer.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse, description = "Logged in; the session cookie is set"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 429, body = crate::error::Problem, content_type = "application/problem+json",
     description = "Too many attempts; see Retry-After"),
))]
#[post("/auth/login")]
#[tracing::instrument(skip_all)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: crate::extract::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { email, password } = body.into_inner();
    let ip = auth::client_ip(&req, state.settings.server.trust_proxy_headers);
    let account = email.trim().to_lowercase();
    if let Err(retry_after) = state.login_limiter.check(&ip, &account) {
        metrics::counter!("parley_login_total", "outcome" => "rate_limited").increment(1);
        tracing::warn!(%ip, "Login rate limit hit");
        return Err(ApiError::RateLimited { retry_after });
    }
    let invalid = || ApiError::new(ErrorCode::InvalidCredentials, "invalid email or password");

    let found = match EmailAddress::parse(email) {
        Ok(e) => users::find_for_login(state.db.pool(), e.as_str()).await?,
        Err(_) => None,
    };
    let Some((user, phc)) = found else {
        // Same work as a real check, so timing does not reveal which emails exist.
        let _ = auth::verify_password(password, state.dummy_hash.clone()).await;
        metrics::counter!("parley_login_total", "outcome" => "failed").increment(1);
        return Err(invalid());
    };
    if !auth::verify_password(password, phc).await? || !user.active {
        metrics::counter!("parley_login_total", "outcome" => "failed").increment(1);
        return Err(invalid());
    }

    start_session(&req, &state, user, &ip).await
}

/// Open a console session for `user`: the answer carries the token, the CSRF token and
/// the `parley_session` cookie (login, and first-run setup).
pub(crate) async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: users::UserRow,
    ip: &str,
) -> ApiResult<HttpResponse> {
    let token = auth::new_token(auth::SESSION_PREFIX);
    let csrf_token = auth::new_csrf_token();
    let ttl_ms = i64::try_from(
        state
            .settings
            .auth
            .session_ttl_hours
            .saturating_mul(3_600_000),
    )
    .unwrap_or(i64::MAX / 2);
    let expires_at = now_ms().saturating_add(ttl_ms);
    let user_agent: String = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect();
    sessions::insert(
        state.db.pool(),
        sessions::NewSession {
            workspace_id: &user.workspace_id,
            user_id: &user.id,
            token_hash: &auth::token_hash(&token),
            csrf_token: &csrf_token,
            user_agent: &user_agent,
            ip,
            expires_at,
        },
    )
    .await?;
    metrics::counter!("parley_login_total", "outcome" => "ok").increment(1);
    tracing::info!(user_id = %user.id, "Logged in");

    let cookie = Cookie::build(auth::SESSION_COOKIE, token.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.auth.cookie_secure)
        .max_age(CookieDuration::hours(
            i64::try_from(state.settings.auth.session_ttl_hours).unwrap_or(24),
        ))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        token,
        csrf_token,
        csrf_header: auth::CSRF_HEADER,
        expires_at: super::time(expires_at),
        user: UserView::from(user),
    }))
}

/// End the current session (its token and cookie stop working at once).
#[utoipa::path(tag = "auth", responses(
    (status = 204, description = "Logged out; the cookie is cleared"),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json",
     description = "Called with an API token (revoke those with DELETE /api-tokens/{id})"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/auth/logout")]
#[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
pub async fn logout(state: web::Data<AppState>, principal: Principal) -> ApiResult<HttpResponse> {
    let AuthVia::Session { session_id } = &principal.via else {
        return Err(ApiError::Validation(
            "this is an API token; revoke it with DELETE /api/v1/api-tokens/{id}".into(),
        ));
    };
    sessions::revoke(state.db.pool(), session_id).await?;
    let mut gone = Cookie::build(auth::SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// The authenticated user.
#[utoipa::path(tag = "auth", responses(
    (status = 200, body = UserView),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/auth/me")]
pub async fn me(principal: Principal) -> web::Json<UserView> {
    web::Json(UserView::from(principal.user))
}
