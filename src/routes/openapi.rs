//! The OpenAPI document: paths and schemas are collected from the handlers as they are
//! registered; this adds the title, version, and the two ways to authenticate.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

/// Complete the collected document.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("Parley API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Parley's HTTP API. Authenticate with `Authorization: Bearer <token>` (a session \
             token from POST /api/v1/auth/login, or an API token) or with the `parley_session` \
             cookie; cookie-authenticated writes must send the `X-CSRF-Token` header returned \
             by login. Errors are application/problem+json. Lists answer \
             {items, next_cursor}.",
        ))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
            crate::auth::SESSION_COOKIE,
        ))),
    );
    api
}
