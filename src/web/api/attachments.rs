//! Attachment endpoints: list, upload (multipart or raw body, 25 MiB cap), download (only
//! inside the board's attachment root, as a sandboxed download) and delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::super::state::{ApiError, ApiResult, WebState};
use super::{Q, board_param};
use crate::kernel::validate as v;

pub(super) async fn list_attachments(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    st.on(board_param(&q).as_deref(), move |b| {
        b.get_task(&id)?;
        Ok(Json(json!({"attachments": b.list_attachments(&id)?})))
    })
    .await
}

/// An upload's parts from a `multipart/form-data` body: `(file name, bytes, MIME type,
/// uploaded_by)` from the `file` and `uploaded_by` fields.
async fn read_multipart(
    ctype: &str,
    body: Bytes,
) -> Result<(String, Bytes, Option<String>, Option<String>), ApiError> {
    let boundary = multer::parse_boundary(ctype)
        .map_err(|e| ApiError::bad(format!("bad multipart body: {e}")))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut file: Option<(String, Bytes, Option<String>)> = None;
    let mut by: Option<String> = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::bad(format!("bad multipart body: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let fname = field.file_name().unwrap_or("").to_string();
                let mime = field.content_type().map(|m| m.to_string());
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::bad(format!("bad multipart body: {e}")))?;
                file = Some((fname, data, mime));
            }
            Some("uploaded_by") => {
                by = field.text().await.ok().filter(|s| !s.trim().is_empty());
            }
            _ => {}
        }
    }
    let (n, d, m) = file.ok_or_else(|| ApiError::bad("missing file: send a `file` field"))?;
    Ok((n, d, m, by))
}

/// `POST /tasks/{id}/attachments`: `multipart/form-data` (field `file`, optional
/// `uploaded_by`) or a raw body with `?filename=` (and optional `?uploaded_by=`). Over 25 MiB
/// → 413.
pub(super) async fn upload_attachment(
    State(st): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let too_big = || {
        ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "attachments are limited to {} bytes (25 MiB)",
                v::ATTACHMENT_MAX_BYTES
            ),
        )
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_big()
        } else {
            ApiError::bad(e.body_text())
        }
    })?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (name, data, mime, by) = if ctype.starts_with("multipart/form-data") {
        read_multipart(&ctype, body).await?
    } else {
        let name = q.get("filename").cloned().ok_or_else(|| {
            ApiError::bad(
                "missing filename: pass ?filename= with a raw body, or send multipart/form-data",
            )
        })?;
        let mime = (!ctype.is_empty()).then_some(ctype);
        (name, body, mime, q.get("uploaded_by").cloned())
    };
    if data.len() > v::ATTACHMENT_MAX_BYTES {
        return Err(too_big());
    }
    // A browser-supplied path (`C:\fakepath\x.txt`) keeps only its leaf.
    let leaf = name.rsplit(['/', '\\']).next().unwrap_or("").to_string();
    let by = by.unwrap_or_else(|| "dashboard".into());
    st.on(board_param(&q).as_deref(), move |b| {
        let mime = mime.filter(|m| m.len() <= 200 && !m.contains(['\r', '\n']));
        let a = b.add_attachment(&id, &leaf, &data, mime.as_deref(), Some(&by))?;
        Ok(Json(json!({"attachment": a})))
    })
    .await
}

pub(super) fn parse_aid(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found(format!("no such attachment: {raw}")))
}

/// `GET /attachments/{id}`: the content as a download (`application/octet-stream`,
/// `Content-Disposition: attachment`) from the database, or from its file only if that lies
/// inside the board's attachment root.
pub(super) async fn download_attachment(
    State(st): State<Arc<WebState>>,
    Path(aid): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let aid = parse_aid(&aid)?;
    let (a, data) = st
        .on(board_param(&q).as_deref(), move |b| {
            let a = b.get_attachment(aid)?;
            let Some(data) = b
                .attachment_content(&a)
                .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            else {
                return Err(ApiError::not_found(format!(
                    "attachment {aid}: its file is missing or outside this board's attachment root"
                )));
            };
            Ok((a, data))
        })
        .await?;
    let ascii: String = a
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let utf8: String = a
        .filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{utf8}"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
        ],
        data,
    )
        .into_response())
}

pub(super) async fn delete_attachment(
    State(st): State<Arc<WebState>>,
    Path(aid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let aid = parse_aid(&aid)?;
    st.on(board_param(&q).as_deref(), move |b| {
        b.remove_attachment(aid)?;
        Ok(Json(json!({"ok": true, "id": aid})))
    })
    .await
}
