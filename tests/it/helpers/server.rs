//! The REST fixture: [`Server`], the real router (`hermes_kanban::web::router`) served on
//! 127.0.0.1:0 over a temp home, with an HTTP client and JSON call helpers. Dropping it stops
//! the server and runs the invariant checker on every board of the home. On PostgreSQL the
//! home's boards live in the fixture's own database (see [`super::backend`]).

use std::net::SocketAddr;

use hermes_kanban::kernel::{Board, Env, NewTask};
use hermes_kanban::web::{DispatchHook, ServeConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::backend::TestDb;

/// A served router on a temp home.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub env: Env,
    pub ct: CancellationToken,
    pub http: Client,
    /// The fixture's PostgreSQL database (dropped last), `None` on SQLite.
    pub pg: Option<TestDb>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.ct.cancel();
        if !std::thread::panicking() {
            super::check_home(&self.env);
        }
    }
}

/// A loopback serve configuration with an optional admin token and dispatch hook.
pub fn config(token: Option<&str>, dispatch: Option<DispatchHook>) -> ServeConfig {
    ServeConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        admin_token: token.map(str::to_string),
        board: None,
        allowed_hosts: vec![],
        tools: None,
        dispatch,
    }
}

/// Serve `cfg` on a fresh temp home with its default board created.
pub async fn start_with(cfg: ServeConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pg = TestDb::for_fixture();
    let env = super::board::fixture_env(dir.path(), pg.as_ref());
    super::board::open_board(&env, None);
    let ct = CancellationToken::new();
    let home = hermes_kanban::kernel::Kanban::open(&env, None).expect("open the home");
    let app = hermes_kanban::web::router(home, &cfg, ct.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ct.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .unwrap();
    });
    Server {
        addr,
        dir,
        env,
        ct,
        http: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        pg,
    }
}

/// Serve without an admin token or dispatch hook.
pub async fn start() -> Server {
    start_with(config(None, None)).await
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The default board, opened by the kernel.
    pub fn board(&self) -> Board {
        super::board::open_board(&self.env, None)
    }

    /// Create a task assigned to `worker`.
    pub fn task(&self, title: &str) -> String {
        self.task_with(title, &[])
    }

    /// Create a child of `parent`.
    pub fn child(&self, title: &str, parent: &str) -> String {
        self.task_with(title, &[parent.to_string()])
    }

    /// Create a task assigned to `worker` under `parents`.
    pub fn task_with(&self, title: &str, parents: &[String]) -> String {
        self.board()
            .create_task(NewTask {
                title: title.into(),
                assignee: Some("worker".into()),
                parents: parents.to_vec(),
                ..Default::default()
            })
            .unwrap()
            .task
            .id
    }

    /// One request; the body parsed as JSON (or kept as a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rq = self.http.request(method, self.url(path));
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// A request that must answer 200; its JSON body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert_eq!(s, StatusCode::OK, "{method} {path}: {v}");
        v
    }

    /// A request that must answer `want`; the `detail` of its error body.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> String {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert_eq!(s.as_u16(), want, "{method} {path}: {v}");
        v["detail"].as_str().unwrap_or_default().to_string()
    }
}
