//! The HTTP server of `serve`: the dashboard at `/` (embedded assets), the REST API and its
//! live event stream under `/api/` (also at Hermes' `/api/plugins/kanban/`), the MCP
//! streamable-HTTP service at `/mcp` behind an auth layer that decides each request's scope
//! (run token → worker; admin token → orchestrator; loopback without a token → orchestrator
//! only when no token is configured; anything else → 401), and
//! `/healthz`. Every route sits behind [`security::guard`] (Host/Origin checks, the admin
//! token, security headers).

pub mod api;
mod assets;
pub mod security;
mod sse;
pub mod state;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::kernel::Kanban;
use crate::mcp::{KanbanMcp, McpState, Scope};
use security::{bearer, same};

pub use state::{DispatchHook, DispatchRequest, WebState};

/// How `serve` was configured.
#[derive(Clone)]
pub struct ServeConfig {
    /// Address to bind.
    pub bind: SocketAddr,
    /// Admin token (required when `bind` is not loopback).
    pub admin_token: Option<String>,
    /// Default board.
    pub board: Option<String>,
    /// Extra Host header values to accept (besides localhost/127.0.0.1/::1).
    pub allowed_hosts: Vec<String>,
    /// `--tools` narrowing for MCP.
    pub tools: Option<BTreeSet<String>>,
    /// Runs one dispatcher tick for `POST /api/dispatch` (None → 503).
    pub dispatch: Option<DispatchHook>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("bind", &self.bind)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("board", &self.board)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("tools", &self.tools)
            .field("dispatch", &self.dispatch.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

#[derive(Clone)]
struct AuthState {
    mcp: Arc<McpState>,
    admin: Option<String>,
}

fn unauthorized(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// 401 for a bearer token that is wrong or no longer valid (RFC 6750 §3.1).
fn invalid_token(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// Attach a [`Scope`] to MCP requests or refuse them. Closing a session (`DELETE /mcp`) with
/// the token of a run that has since ended is allowed (clients close after the worker
/// completes; a 401 there reads as a failure), and is answered `200 OK`, not rmcp's `202`
/// (clients log "Session termination failed" on 202).
async fn mcp_auth(State(st): State<AuthState>, req: Request, next: Next) -> Response {
    let closing = req.method() == axum::http::Method::DELETE;
    let mut resp = mcp_scope(st, req, next, closing).await;
    if closing && resp.status() == StatusCode::ACCEPTED {
        *resp.status_mut() = StatusCode::OK;
    }
    resp
}

async fn mcp_scope(st: AuthState, mut req: Request, next: Next, closing: bool) -> Response {
    let peer_loopback = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback());
    let scope = match bearer(&req) {
        Some(t) if st.admin.as_deref().is_some_and(|a| same(a, &t)) => {
            Scope::Orchestrator { profile: None }
        }
        Some(t) => {
            let mcp = st.mcp.clone();
            let token = t.clone();
            let found = tokio::task::spawn_blocking(move || {
                mcp.resolve_token(&token).map(|(board, rs)| {
                    let profile = rs
                        .live
                        .then(|| {
                            mcp.with_board(Some(&board), |b| b.get_task(&rs.task_id))
                                .ok()
                        })
                        .flatten()
                        .and_then(|t| t.assignee);
                    (board, rs, profile)
                })
            })
            .await
            .ok()
            .flatten();
            match found {
                Some((board, rs, profile)) if rs.live || closing => Scope::Worker {
                    task_id: rs.task_id,
                    run_id: Some(rs.run_id),
                    claim_lock: None,
                    board: Some(board),
                    profile,
                },
                Some(_) => return invalid_token("run token expired: its run has ended"),
                None => return invalid_token("unknown bearer token"),
            }
        }
        // Loopback without a token is the orchestrator only while no token is configured: with
        // `--token`, a reverse proxy on this host (every request loopback) or a worker that
        // omits its run token must not get orchestrator scope.
        None if peer_loopback && st.admin.is_none() => Scope::Orchestrator { profile: None },
        None => {
            return unauthorized(if st.admin.is_some() {
                "authorization required: this server has a token; send `Authorization: Bearer \
                <token>` (the serve --token value, or a worker's run token)"
            } else {
                "authorization required: send `Authorization: Bearer <token>`"
            });
        }
    };
    req.extensions_mut().insert(scope);
    next.run(req).await
}

/// The application router (dashboard, REST, live events, MCP, health), given a cancellation
/// token that ends live streams on shutdown. The REST API and MCP share `home`'s board handles
/// (a [`Kanban`], or an [`Env`](crate::kernel::Env) for its SQLite boards).
pub fn router(home: impl Into<Kanban>, cfg: &ServeConfig, ct: CancellationToken) -> Router {
    let home = home.into();
    let web = WebState::new(
        home.clone(),
        cfg.board.clone(),
        cfg.dispatch.clone(),
        ct.child_token(),
    );
    let state = McpState::new(home, cfg.board.clone(), cfg.tools.clone(), false);
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(cfg.allowed_hosts.iter().cloned());
    if !cfg.bind.ip().is_loopback() && !cfg.bind.ip().is_unspecified() {
        hosts.push(cfg.bind.ip().to_string());
    }
    let mut mcp_cfg = StreamableHttpServerConfig::default()
        .with_cancellation_token(ct.child_token())
        .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]);
    mcp_cfg = if cfg.bind.ip().is_unspecified() && cfg.allowed_hosts.is_empty() {
        // Bound to every interface: Host can be anything; the token requirement protects.
        mcp_cfg.disable_allowed_hosts()
    } else {
        mcp_cfg.with_allowed_hosts(hosts)
    };
    let factory_state = state.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(KanbanMcp::new(factory_state.clone())),
        LocalSessionManager::default().into(),
        mcp_cfg,
    );
    let auth = AuthState {
        mcp: state,
        admin: cfg.admin_token.clone(),
    };
    let mcp_routes = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(auth, mcp_auth));
    let api = api::routes().with_state(web);
    let sec = Arc::new(security::Security::new(
        cfg.bind,
        &cfg.allowed_hosts,
        cfg.admin_token.clone(),
    ));
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route("/", axum::routing::get(assets::index))
        .route("/index.html", axum::routing::get(assets::index))
        .route("/assets/{name}", axum::routing::get(assets::asset))
        .nest("/api", api.clone())
        .nest("/api/plugins/kanban", api)
        .merge(mcp_routes)
        .fallback(|| async { (StatusCode::NOT_FOUND, Body::from("not found\n")) })
        .layer(middleware::from_fn_with_state(sec, security::guard))
}

/// Run the HTTP server until `ct` is cancelled.
pub async fn serve(
    home: impl Into<Kanban>,
    cfg: ServeConfig,
    ct: CancellationToken,
) -> anyhow::Result<()> {
    let listener = bind(&cfg).await?;
    serve_on(home, cfg, listener, ct).await
}

/// Check the token rule and bind `cfg.bind`; `serve` binds before it starts anything else, so
/// a busy port fails before the dispatcher ticks.
pub async fn bind(cfg: &ServeConfig) -> anyhow::Result<tokio::net::TcpListener> {
    if !cfg.bind.ip().is_loopback()
        && cfg
            .admin_token
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        anyhow::bail!(
            "refusing to bind {} without a token: pass --token <secret> (or HERMES_KANBAN_TOKEN) \
            when listening beyond loopback",
            cfg.bind
        );
    }
    tokio::net::TcpListener::bind(cfg.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", cfg.bind))
}

/// The accept loop's listener: every accepted socket gets `TCP_NODELAY`. Without it a
/// keep-alive exchange stalls ~40 ms on the response's last small write (Nagle holds it until
/// the client's delayed ACK), e.g. the final chunk of an MCP call's SSE stream.
pub type NoDelayListener =
    axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)>;

/// Wrap `listener` so every connection it accepts has `TCP_NODELAY` set ([`serve_on`] serves
/// through this).
pub fn accept_nodelay(listener: tokio::net::TcpListener) -> NoDelayListener {
    use axum::serve::ListenerExt;
    fn set_nodelay(io: &mut tokio::net::TcpStream) {
        if let Err(e) = io.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on an accepted connection: {e}");
        }
    }
    listener.tap_io(set_nodelay as fn(&mut tokio::net::TcpStream))
}

/// Serve on a bound listener until `ct` is cancelled.
pub async fn serve_on(
    home: impl Into<Kanban>,
    cfg: ServeConfig,
    listener: tokio::net::TcpListener,
    ct: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(home, &cfg, ct.clone());
    let addr = listener.local_addr()?;
    eprintln!(
        "hermes-kanban serving on http://{addr} (dashboard at http://{addr}/, MCP at \
        http://{addr}/mcp)"
    );
    axum::serve(
        accept_nodelay(listener),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { ct.cancelled().await })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    /// Connections accepted through the serve loop's listener have `TCP_NODELAY` set (a plain
    /// accept does not: the check would pass vacuously if the OS defaulted to it).
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = plain.local_addr().unwrap();
        let _c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (raw, _) = plain.accept().await.unwrap();
        assert!(!raw.nodelay().unwrap(), "the OS default is Nagle on");

        let mut l = super::accept_nodelay(plain);
        let _c2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (io, peer) = Listener::accept(&mut l).await;
        assert!(io.nodelay().unwrap(), "accepted socket without TCP_NODELAY");
        assert!(peer.ip().is_loopback());
    }
}
