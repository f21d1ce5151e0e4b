//! The browser side, served by `parley` itself: the agent console at `/` and the chat
//! widget's loader at `/widget.js`, with every other file under `web/` at
//! `/static/<path>`. The files are embedded in the binary (`rust-embed`), so users never
//! run a front-end build; debug builds read them from disk so edits show on reload.
//!
//! Every answer carries a strong `ETag` (the file's SHA-256) and `Cache-Control:
//! no-cache`, so browsers revalidate cheaply (304) and a new release takes effect on the
//! next load. Text assets are gzip-compressed when the client accepts it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

use crate::error::ApiError;

/// The `web/` folder: `console/` (the agent console) and `widget/` (the chat widget).
#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// The console's entry page.
pub const CONSOLE_INDEX: &str = "console/index.html";
/// The widget's loader: what the tracking code's `<script async>` fetches.
pub const WIDGET_LOADER: &str = "widget/loader.js";

/// Register the asset routes (outside the OpenAPI document: they are not API).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .wrap(Compress::default())
            .route(web::get().to(|req: HttpRequest| async move { serve(&req, CONSOLE_INDEX) })),
    )
    .service(
        web::resource("/widget.js")
            .wrap(Compress::default())
            .route(web::get().to(|req: HttpRequest| async move { serve(&req, WIDGET_LOADER) })),
    )
    .service(
        web::resource("/static/{path:.*}")
            .wrap(Compress::default())
            .route(
                web::get().to(|req: HttpRequest, path: web::Path<String>| async move {
                    serve(&req, &path)
                }),
            ),
    );
}

/// Answer one embedded file, or 404 problem+json.
fn serve(req: &HttpRequest, path: &str) -> Result<HttpResponse, ApiError> {
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return Err(ApiError::not_found("file"));
    }
    let file = Assets::get(path).ok_or_else(|| ApiError::not_found("file"))?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if matches {
        return Ok(res.finish());
    }
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        res.insert_header((header::CONTENT_TYPE, v));
    }
    if path.starts_with("console/") && path.ends_with(".html") {
        // The console's pages are never framed by another site (clickjacking).
        res.insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data: blob: https: http:; \
                 style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; \
                 frame-ancestors 'none'",
            ));
    }
    Ok(res.body(file.data.into_owned()))
}

/// Whether a file is embedded (for tests and the start-up log).
pub fn has(path: &str) -> bool {
    Assets::get(path).is_some()
}
