//! Board endpoints: list (with per-status counts), create, edit `board.json`, archive or delete,
//! and switch the current board.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::super::state::{ApiError, ApiResult, Fields, WebState};
use super::json::*;
use super::{Q, flag};
use crate::kernel::{BoardPatch, NewBoard, check_workdir};

pub(super) fn workspace_kind_of(dir: Option<&str>) -> &'static str {
    match dir {
        None => "scratch",
        Some(d) => {
            let in_git = std::path::Path::new(d)
                .ancestors()
                .any(|p| p.join(".git").exists());
            if in_git { "worktree" } else { "dir" }
        }
    }
}

pub(super) async fn boards(State(st): State<Arc<WebState>>, Query(q): Q) -> ApiResult {
    let include_archived = flag(&q, "include_archived")?;
    let home = st.home.clone();
    let list = blocking(move || home.list(include_archived)).await?;
    let current = st.resolve(None).await?;
    let mut out = Vec::new();
    for e in list {
        let slug = e.meta.slug.clone();
        let counts = st
            .on_slug(slug, |b| Ok(b.stats()?.by_status))
            .await
            .unwrap_or_default();
        let total: i64 = counts.values().sum();
        let mut m = obj(serde_json::to_value(&e.meta).unwrap_or_default());
        m.insert("is_current".into(), json!(e.meta.slug == current));
        m.insert("counts".into(), json!(counts));
        m.insert("total".into(), json!(total));
        m.insert(
            "default_workspace_kind".into(),
            json!(workspace_kind_of(e.meta.default_workdir.as_deref())),
        );
        out.push(Value::Object(m));
    }
    Ok(Json(json!({"boards": out, "current": current})))
}

pub(super) async fn new_board(State(st): State<Arc<WebState>>, body: Bytes) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&[
        "slug",
        "name",
        "description",
        "icon",
        "color",
        "default_workdir",
        "switch",
    ])?;
    let slug = crate::kernel::normalize_slug(&f.req_str("slug")?)?;
    let workdir = f.str("default_workdir")?.filter(|s| !s.trim().is_empty());
    if let Some(w) = &workdir {
        check_workdir(w)?;
    }
    let opts = NewBoard {
        name: f.str("name")?,
        description: f.str("description")?,
        icon: f.str("icon")?,
        color: f.str("color")?,
        default_workdir: workdir,
    };
    let switch = f.bool("switch", false)?;
    let home = st.home.clone();
    let now = chrono::Utc::now().timestamp();
    let (meta, created) = blocking(move || home.create(&slug, opts, now)).await?;
    if !created {
        return Err(ApiError::conflict(format!(
            "board '{}' already exists",
            meta.slug
        )));
    }
    if switch {
        let (home, slug) = (st.home.clone(), meta.slug.clone());
        blocking(move || home.switch(&slug)).await?;
    }
    let current = st.resolve(None).await?;
    Ok(Json(json!({"board": meta, "current": current})))
}

pub(super) async fn patch_board(
    State(st): State<Arc<WebState>>,
    Path(slug): Path<String>,
    body: Bytes,
) -> ApiResult {
    let f = Fields::parse(&body)?;
    f.only(&["name", "description", "icon", "color", "default_workdir"])?;
    let opt = |k: &str| -> Result<Option<Option<String>>, ApiError> {
        if f.has(k) {
            Ok(Some(f.str(k)?.filter(|s| !s.trim().is_empty())))
        } else {
            Ok(None)
        }
    };
    let patch = BoardPatch {
        name: f.str("name")?,
        description: opt("description")?,
        icon: opt("icon")?,
        color: opt("color")?,
        default_workdir: opt("default_workdir")?,
    };
    let home = st.home.clone();
    let now = chrono::Utc::now().timestamp();
    let meta = blocking(move || home.update(&slug, patch, now)).await?;
    Ok(Json(json!({"board": meta})))
}

pub(super) async fn delete_board(
    State(st): State<Arc<WebState>>,
    Path(slug): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let hard = flag(&q, "delete")?;
    let norm = crate::kernel::normalize_slug(&slug)?;
    let (home, n) = (st.home.clone(), norm.clone());
    let now = chrono::Utc::now().timestamp();
    // `remove` forgets the cached handle too (on the blocking pool: the home's map lock is
    // held while a board opens, a network round trip on PostgreSQL).
    let dest = blocking(move || home.remove(&n, hard, now)).await?;
    let result = match dest {
        Some(p) => json!({"slug": norm, "archived": true, "archived_to": p}),
        None => json!({"slug": norm, "deleted": true}),
    };
    Ok(Json(
        json!({"result": result, "current": st.resolve(None).await?}),
    ))
}

pub(super) async fn switch(State(st): State<Arc<WebState>>, Path(slug): Path<String>) -> ApiResult {
    let home = st.home.clone();
    let cur = blocking(move || home.switch(&slug)).await?;
    Ok(Json(json!({"current": cur})))
}

/// A registry call on the blocking pool (PostgreSQL's driver must not run on a runtime thread).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::kernel::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(super::super::state::blocking(f).await??)
}
