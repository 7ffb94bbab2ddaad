//! Shared state of the REST API and the live stream: the environment, the [`Kanban`] home
//! whose board handles it shares (with MCP and the dispatcher in `serve`), the dispatcher hook,
//! and the API's error and JSON-input
//! types. Kernel calls are synchronous, so every handler runs them on the blocking pool, board
//! resolution included (on PostgreSQL it reads the registry: a network round trip).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::kernel::{Board, DiagnosticsConfig, Env, Kanban, KernelError, SharedBoard};

/// What a dashboard "nudge dispatcher" asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRequest {
    /// The board (resolved slug).
    pub board: String,
    /// Plan only; write nothing.
    pub dry_run: bool,
    /// Spawn at most this many workers.
    pub max: usize,
}

/// Runs one dispatcher tick and returns its result as JSON (the `dispatch --json` shape).
/// `serve` fills it when the dispatcher is available.
pub type DispatchHook = Arc<dyn Fn(DispatchRequest) -> Result<Value, String> + Send + Sync>;

/// An HTTP error with a JSON body `{"detail": "…"}` (FastAPI's shape, as Hermes).
#[derive(Debug)]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// Message.
    pub detail: String,
}

impl ApiError {
    /// 400.
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            detail: msg.into(),
        }
    }
    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            detail: msg.into(),
        }
    }
    /// 409.
    pub fn conflict(msg: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            detail: msg.into(),
        }
    }
    /// Any status.
    pub fn status(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: msg.into(),
        }
    }
}

impl From<KernelError> for ApiError {
    fn from(e: KernelError) -> Self {
        let status = match (&e, e.kind()) {
            (
                KernelError::Invalid {
                    field: "run_id", ..
                },
                _,
            ) => StatusCode::NOT_FOUND,
            (_, "not_found") => StatusCode::NOT_FOUND,
            (_, "invalid") => StatusCode::BAD_REQUEST,
            (_, "refused") | (_, "conflict") => StatusCode::CONFLICT,
            // The database server is down or unreachable: retryable, not a server bug.
            (KernelError::Unavailable { .. }, _) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            detail: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({"detail": self.detail}));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // The reconnect back-off's scale: a client may retry after a few seconds.
            return (self.status, [(axum::http::header::RETRY_AFTER, "5")], body).into_response();
        }
        (self.status, body).into_response()
    }
}

/// API result.
pub type ApiResult<T = axum::Json<Value>> = Result<T, ApiError>;

/// State shared by every API handler.
pub struct WebState {
    /// Environment (paths, overrides).
    pub env: Env,
    /// `serve --board`, else the usual chain (env, `current`, `default`).
    pub default_board: Option<String>,
    /// The dispatcher hook (None until `serve` wires the dispatcher in).
    pub dispatch: Option<DispatchHook>,
    /// Diagnostics thresholds.
    pub diagnostics: DiagnosticsConfig,
    /// Cancelled on shutdown (ends live streams).
    pub shutdown: CancellationToken,
    /// Live-stream poll interval.
    pub poll_interval: std::time::Duration,
    /// The home: board resolution and the shared board handles.
    pub home: Kanban,
}

impl WebState {
    /// The diagnostics thresholds with the assignees that can be spawned right now (profiles
    /// and worker commands change while the server runs).
    pub fn diagnostics_now(&self) -> DiagnosticsConfig {
        DiagnosticsConfig {
            spawnable: Some(crate::dispatch::spawnable_assignees(&self.env)),
            ..self.diagnostics.clone()
        }
    }

    /// New state.
    pub fn new(
        home: impl Into<Kanban>,
        default_board: Option<String>,
        dispatch: Option<DispatchHook>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let home = home.into();
        Arc::new(WebState {
            env: home.env().clone(),
            default_board,
            dispatch,
            diagnostics: DiagnosticsConfig::default(),
            shutdown,
            poll_interval: std::time::Duration::from_millis(250),
            home,
        })
    }

    /// Resolve `?board=` (400 malformed, 404 unknown) or the default chain, on the blocking
    /// pool.
    pub async fn resolve(self: &Arc<Self>, board: Option<&str>) -> Result<String, ApiError> {
        let (st, board) = (self.clone(), board.map(str::to_string));
        blocking(move || st.resolve_here(board.as_deref())).await?
    }

    /// [`WebState::resolve`] on this thread (a blocking one: it may wait on the network).
    fn resolve_here(&self, board: Option<&str>) -> Result<String, ApiError> {
        let b = board
            .filter(|s| !s.trim().is_empty())
            .or(self.default_board.as_deref());
        Ok(self.home.resolve(b)?)
    }

    /// The shared handle of a board (already resolved slug); its database is created when
    /// missing, as Hermes' dashboard does, and said on stderr.
    fn handle(&self, slug: &str) -> Result<SharedBoard, ApiError> {
        let (b, created) = self.home.board_or_create(Some(slug))?;
        if created {
            eprintln!(
                "hermes-kanban: created a new board database at {} (board '{slug}')",
                b.lock().paths().db.display()
            );
        }
        Ok(b)
    }

    /// Run `f` on a board (already resolved slug) on the blocking pool.
    pub async fn on_slug<T, F>(self: &Arc<Self>, slug: String, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Board) -> Result<T, ApiError> + Send + 'static,
    {
        let st = self.clone();
        blocking(move || {
            // One kernel call, its writes group-committed with those of concurrent calls.
            st.handle(&slug)?.call(f)
        })
        .await?
    }

    /// Resolve `?board=` and run `f` on it, both on the blocking pool (one hand-off).
    pub async fn on<T, F>(self: &Arc<Self>, board: Option<&str>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Board) -> Result<T, ApiError> + Send + 'static,
    {
        let (st, board) = (self.clone(), board.map(str::to_string));
        blocking(move || {
            let slug = st.resolve_here(board.as_deref())?;
            st.handle(&slug)?.call(f)
        })
        .await?
    }
}

/// Run `f` on the blocking pool (kernel calls are synchronous and may wait on the disk or the
/// network); a panic in `f` is a 500.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A JSON object body with typed, field-naming getters. Unknown keys are ignored (as Hermes'
/// pydantic models do); a wrong type is a 400 that names the field.
#[derive(Debug, Default)]
pub struct Fields(pub Map<String, Value>);

impl Fields {
    /// Parse a request body: empty → `{}`, else it must be a JSON object.
    pub fn parse(body: &Bytes) -> Result<Fields, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            Ok(other) => Err(ApiError::bad(format!(
                "the request body must be a JSON object, not {}",
                crate::kernel::validate::json_type(&other)
            ))),
            Err(e) => Err(ApiError::bad(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    /// Refuse a field this endpoint does not know (a typo would otherwise be ignored in
    /// silence): 400 naming the field and listing the accepted ones.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(ApiError::bad(format!(
            "unknown field{} {}: this endpoint accepts {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
            allowed.join(", ")
        )))
    }

    /// Whether the key is present (even as null).
    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }

    fn wrong(k: &str, want: &str, v: &Value) -> ApiError {
        ApiError::bad(format!(
            "invalid {k}: expected {want}, got {}",
            crate::kernel::validate::json_type(v)
        ))
    }

    /// Optional string (null = absent).
    pub fn str(&self, k: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Self::wrong(k, "a string", v)),
        }
    }

    /// Required non-blank string.
    pub fn req_str(&self, k: &str) -> Result<String, ApiError> {
        self.str(k)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::bad(format!("missing {k}: it is required")))
    }

    /// Optional integer (integral floats accepted).
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| ApiError::bad(format!("invalid {k}: expected an integer, got {n}"))),
            Some(v) => Err(Self::wrong(k, "an integer", v)),
        }
    }

    /// Optional boolean with a default.
    pub fn bool(&self, k: &str, default: bool) -> Result<bool, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(Self::wrong(k, "true or false", v)),
        }
    }

    /// Optional list of strings.
    pub fn strs(&self, k: &str) -> Result<Vec<String>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(Self::wrong(k, "a list of strings", v)),
                })
                .collect(),
            Some(v) => Err(Self::wrong(k, "a list of strings", v)),
        }
    }

    /// Raw value (e.g. `metadata`, validated by the kernel).
    pub fn value(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }
}
