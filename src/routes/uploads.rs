//! Attachments: upload a file (a visitor through the widget, or an agent), then name its
//! id in a `send` frame's `attachments`; download it with the right content type and
//! `Content-Disposition`. Files live under `storage.data_dir/uploads/`. Only the
//! conversation's participants may download: its visitor (contact), and the agents who
//! may see the conversation; before a message carries it, only its uploader.
//!
//! Limits: [`MAX_UPLOAD_BYTES`] per file and the media types in [`ALLOWED_TYPES`];
//! images must look like what they claim (magic bytes), and SVG is not accepted (it can
//! carry script).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::widget::{bearer_visitor, chat_channel, check_origin, rate_limit};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::startup::AppState;
use crate::store::uploads::{self, UploadRow};
use crate::store::{engine as sql, inboxes, new_id};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(visitor_upload)
        .service(agent_upload)
        .service(visitor_download)
        .service(agent_download);
}

/// Largest file accepted.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// Media types accepted, and whether the browser may show them inline.
pub const ALLOWED_TYPES: &[(&str, bool)] = &[
    ("image/png", true),
    ("image/jpeg", true),
    ("image/gif", true),
    ("image/webp", true),
    ("application/pdf", false),
    ("text/plain", false),
    ("text/csv", false),
    ("application/zip", false),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        false,
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        false,
    ),
];

/// `?name=` of an upload.
#[derive(Debug, Deserialize, IntoParams)]
pub struct UploadQuery {
    /// The file's name (default `file`); path parts and control characters are dropped.
    pub name: Option<String>,
}

fn clean_name(name: Option<&str>) -> String {
    let base = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

fn media_type(req: &HttpRequest) -> ApiResult<&'static str> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ALLOWED_TYPES
        .iter()
        .find(|(t, _)| *t == declared)
        .map(|(t, _)| *t)
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "content_type: {declared:?} is not accepted; send the file as the body with \
                 one of: {}",
                ALLOWED_TYPES
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Whether the first bytes fit the declared type (images and PDF are checked).
fn looks_like(content_type: &str, head: &[u8]) -> bool {
    match content_type {
        "image/png" => head.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => head.starts_with(&[0xff, 0xd8, 0xff]),
        "image/gif" => head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
        "image/webp" => head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP",
        "application/pdf" => head.starts_with(b"%PDF-"),
        _ => true,
    }
}

fn upload_dir(state: &AppState) -> std::path::PathBuf {
    state.settings.storage.data_dir.join("uploads")
}

/// Stream the body to disk under a new id, within the size limit; returns (id, size,
/// sha256).
async fn save_body(
    state: &AppState,
    content_type: &str,
    mut body: web::Payload,
) -> ApiResult<(String, i64, String)> {
    let dir = upload_dir(state);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let id = new_id();
    let tmp = dir.join(format!(".{id}.part"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", tmp.display()))?;
    let mut size = 0usize;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(16);
    let result: ApiResult<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ApiError::Validation(format!("body: {e}")))?;
            size += chunk.len();
            if size > MAX_UPLOAD_BYTES {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("a file may be at most {MAX_UPLOAD_BYTES} bytes"),
                ));
            }
            if head.len() < 16 {
                head.extend(chunk.iter().take(16 - head.len()));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| anyhow::anyhow!("writing an upload: {e}"))?;
        }
        if size == 0 {
            return Err(ApiError::Validation("body: the file is empty".into()));
        }
        if !looks_like(content_type, &head) {
            return Err(ApiError::Validation(format!(
                "body: the file is not a {content_type}"
            )));
        }
        file.flush()
            .await
            .map_err(|e| anyhow::anyhow!("writing an upload: {e}"))?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, dir.join(&id))
        .await
        .map_err(|e| anyhow::anyhow!("storing an upload: {e}"))?;
    Ok((
        id,
        i64::try_from(size).unwrap_or(i64::MAX),
        hex::encode(hasher.finalize()),
    ))
}

async fn store_upload(
    state: &AppState,
    req: &HttpRequest,
    body: web::Payload,
    name: Option<&str>,
    owner: (&str, Option<&str>, &str, &str),
) -> ApiResult<HttpResponse> {
    let (workspace_id, channel_id, uploader_type, uploader_id) = owner;
    let content_type = media_type(req)?;
    let (id, size, sha256) = save_body(state, content_type, body).await?;
    let row = UploadRow {
        id,
        workspace_id: workspace_id.to_owned(),
        channel_id: channel_id.map(str::to_owned),
        uploader_type: uploader_type.to_owned(),
        uploader_id: uploader_id.to_owned(),
        conversation_id: None,
        name: clean_name(name),
        content_type: content_type.to_owned(),
        size,
        sha256,
    };
    uploads::insert(state.db.pool(), &row).await?;
    metrics::counter!("parley_uploads_total").increment(1);
    Ok(HttpResponse::Created().json(row.attachment()))
}

/// Upload a file as a visitor (`Authorization: Bearer <visitor_token>`): the body is the
/// file, `Content-Type` its media type, `?name=` its name. Answers the attachment
/// object; name its `id` in a `send` frame's `attachments`.
#[utoipa::path(tag = "widget", params(("channel_id" = String, Path, description = "Chat channel id"), UploadQuery),
    request_body(content = Vec<u8>, description = "The file's bytes", content_type = "application/octet-stream"),
    responses(
    (status = 201, body = Object, description = "The attachment {id, name, content_type, size, url}"),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/widget/{channel_id}/uploads")]
pub async fn visitor_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    channel_id: web::Path<String>,
    query: web::Query<UploadQuery>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (channel, settings) = chat_channel(&state, &channel_id).await?;
    check_origin(&req, &settings)?;
    rate_limit(&req, &state)?;
    let v = bearer_visitor(&req, &state, &channel.id).await?;
    store_upload(
        &state,
        &req,
        body,
        query.name.as_deref(),
        (&v.workspace_id, Some(&channel.id), "visitor", &v.contact_id),
    )
    .await
}

/// Upload a file as an agent: the body is the file, `Content-Type` its media type,
/// `?name=` its name. Name the answer's `id` in a `send` frame's `attachments`.
#[utoipa::path(tag = "attachments", params(UploadQuery),
    request_body(content = Vec<u8>, description = "The file's bytes", content_type = "application/octet-stream"),
    responses(
    (status = 201, body = Object, description = "The attachment {id, name, content_type, size, url}"),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 413, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/uploads")]
pub async fn agent_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<UploadQuery>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    store_upload(
        &state,
        &req,
        body,
        query.name.as_deref(),
        (principal.workspace_id(), None, "agent", &principal.user.id),
    )
    .await
}

/// The file, with its type, `Content-Disposition` (`inline` for images, `attachment`
/// otherwise) and headers that keep a browser from running it.
async fn serve(state: &AppState, row: &UploadRow) -> ApiResult<HttpResponse> {
    let path = upload_dir(state).join(&row.id);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found("attachment"))?;
    let inline = ALLOWED_TYPES
        .iter()
        .any(|(t, inline)| *t == row.content_type && *inline);
    let ascii: String = row
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = row
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}",
        if inline { "inline" } else { "attachment" }
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, row.content_type.clone()))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .insert_header((header::ETAG, format!("\"{}\"", row.sha256)))
        .body(bytes))
}

/// Download an attachment as the conversation's visitor (`Authorization: Bearer
/// <visitor_token>`).
#[utoipa::path(tag = "widget",
    params(("channel_id" = String, Path, description = "Chat channel id"),
           ("id" = String, Path, description = "Attachment id")), responses(
    (status = 200, description = "The file"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/widget/{channel_id}/attachments/{id}")]
pub async fn visitor_download(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, id) = path.into_inner();
    let (channel, settings) = chat_channel(&state, &channel_id).await?;
    check_origin(&req, &settings)?;
    let v = bearer_visitor(&req, &state, &channel.id).await?;
    let row = uploads::get(state.db.reader(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let allowed = match &row.conversation_id {
        Some(conv) => sql::get_conversation(state.db.reader(), conv)
            .await?
            .is_some_and(|c| c.contact_id == v.contact_id && c.channel_id == channel.id),
        None => row.uploader_type == "visitor" && row.uploader_id == v.contact_id,
    };
    if !allowed {
        return Err(ApiError::not_found("attachment"));
    }
    serve(&state, &row).await
}

/// Download an attachment as an agent who may see its conversation (or who uploaded it).
#[utoipa::path(tag = "attachments", params(("id" = String, Path, description = "Attachment id")), responses(
    (status = 200, description = "The file"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/attachments/{id}")]
pub async fn agent_download(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let row = uploads::get(state.db.reader(), &id)
        .await?
        .filter(|r| r.workspace_id == principal.workspace_id())
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let allowed = match &row.conversation_id {
        Some(conv) => match sql::get_conversation(state.db.reader(), conv).await? {
            Some(c) => {
                principal.is_admin()
                    || inboxes::is_member(
                        state.db.reader(),
                        principal.workspace_id(),
                        &c.inbox_id,
                        &principal.user.id,
                    )
                    .await?
            }
            None => false,
        },
        None => row.uploader_type == "agent" && row.uploader_id == principal.user.id,
    };
    if !allowed {
        return Err(ApiError::not_found("attachment"));
    }
    serve(&state, &row).await
}
