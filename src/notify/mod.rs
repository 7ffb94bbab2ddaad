//! Webhook notifications, delivered by `serve` and `daemon`: one thread per hook configured in
//! `kanban.notify.webhooks` (see [`config`]) polls every board for the events it wants, claims
//! each event through the kernel's delivery cursor (`Board::webhook_claim`, a compare-and-swap,
//! so two hosts never post the same event) and POSTs it as Slack, Discord or plain JSON, with
//! bounded retries and exponential back-off. It never runs on the dispatcher's thread, so a
//! slow or dead receiver cannot delay a tick. No SQL here.
//!
//! Delivery is at most once per hook: an event is claimed before it is posted; after
//! `max_attempts` failed tries (or a 4xx other than 408/429) it is given up on, counted and
//! logged. A host stopped mid-retry puts the cursor back so the next host tries again; a host
//! killed mid-post loses that one event. A new hook starts at the board's newest event.
//!
//! HTTP client: `ureq` (blocking, rustls with ring, no gzip) — a small client that speaks both
//! http:// (tests, local receivers) and https:// (Slack, Discord) without pulling an async
//! client stack into the binary; the delivery threads are plain threads anyway.

pub mod config;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kernel::{Kanban, SharedBoard, WebhookEvent, WebhookFilter};
pub use config::{Format, NotifyConfig, Webhook};

/// The answer to one POST.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PostOutcome {
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Why it failed (`None` on a 2xx).
    pub error: Option<String>,
    /// Whether another try could succeed (network errors, 5xx, 408, 429).
    #[serde(skip)]
    pub retryable: bool,
}

impl PostOutcome {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("hermes-kanban/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// POST `body` as JSON to `url` once.
pub fn post(url: &str, body: &Value, timeout: Duration) -> PostOutcome {
    let res = agent(timeout)
        .post(url)
        .content_type("application/json")
        .send(body.to_string().as_bytes());
    match res {
        Ok(mut r) => {
            let code = r.status().as_u16();
            if (200..300).contains(&code) {
                return PostOutcome {
                    status: Some(code),
                    error: None,
                    retryable: false,
                };
            }
            let text = r
                .body_mut()
                .with_config()
                .limit(2048)
                .read_to_string()
                .unwrap_or_default();
            let text = text.trim();
            PostOutcome {
                status: Some(code),
                error: Some(if text.is_empty() {
                    format!("HTTP {code}")
                } else {
                    format!(
                        "HTTP {code}: {}",
                        crate::kernel::validate::truncate(text, 200)
                    )
                }),
                retryable: code >= 500 || code == 408 || code == 429,
            }
        }
        Err(e) => PostOutcome {
            status: None,
            error: Some(e.to_string()),
            retryable: true,
        },
    }
}

/// Sleep `d` in slices; `false` if `stop` was set meanwhile.
fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    !stop.load(Ordering::SeqCst)
}

/// POST with up to `cfg.max_attempts` tries, waiting `backoff`, `2·backoff`, … (at most 60 s)
/// between them. `None` when `stop` was set before a success (the caller puts the event back).
pub fn post_with_retries(
    url: &str,
    body: &Value,
    cfg: &NotifyConfig,
    stop: &AtomicBool,
) -> Option<(PostOutcome, u32)> {
    let mut wait = cfg.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = post(url, body, cfg.timeout);
        if out.ok() || !out.retryable || attempt >= cfg.max_attempts {
            return Some((out, attempt));
        }
        if !sleep_unless(stop, wait) {
            return None;
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

fn str_field<'a>(p: Option<&'a Value>, k: &str) -> Option<&'a str> {
    p.and_then(|p| p.get(k))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The one-message text of an event.
pub fn event_text(board: &str, e: &WebhookEvent) -> String {
    let ev = &e.event;
    let p = ev.payload.as_ref();
    let title = e.title.as_deref().unwrap_or("(deleted task)");
    let who = e
        .assignee
        .as_deref()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    let (icon, what, detail) = match ev.kind.as_str() {
        "completed" => ("✅", "completed".to_string(), str_field(p, "summary")),
        "blocked" => (
            "⛔",
            match str_field(p, "kind") {
                Some(k) => format!("blocked ({k})"),
                None => "blocked".to_string(),
            },
            str_field(p, "reason"),
        ),
        "gave_up" => (
            "🛑",
            "gave up after repeated failures".to_string(),
            str_field(p, "error").or(str_field(p, "reason")),
        ),
        "crashed" => ("💥", "worker crashed".to_string(), str_field(p, "error")),
        "timed_out" => ("⏱", "timed out".to_string(), str_field(p, "error")),
        "review_requested" => (
            "👀",
            match str_field(p, "reviewer") {
                Some(r) => format!("ready for review by {r}"),
                None => "ready for review".to_string(),
            },
            str_field(p, "summary"),
        ),
        "changes_requested" => ("↩", "changes requested".to_string(), str_field(p, "reason")),
        "test" => ("🔔", "test message".to_string(), None),
        other => ("•", other.to_string(), None),
    };
    let mut s = format!("{icon} [{board}] {} {what}: {title}{who}", ev.task_id);
    if let Some(d) = detail {
        s.push('\n');
        s.push_str(&crate::kernel::validate::truncate(d, 1500));
    }
    s
}

/// The body a hook of `format` receives for an event.
pub fn payload(format: Format, board: &str, hook: &str, e: &WebhookEvent) -> Value {
    let text = event_text(board, e);
    match format {
        Format::Slack => json!({ "text": text }),
        Format::Discord => json!({
            "content": crate::kernel::validate::truncate(&text, 1990),
            "username": "hermes-kanban",
            "allowed_mentions": { "parse": [] },
        }),
        Format::Json => json!({
            "source": "hermes-kanban",
            "board": board,
            "hook": hook,
            "event": {
                "id": e.event.id,
                "kind": e.event.kind,
                "task_id": e.event.task_id,
                "run_id": e.event.run_id,
                "created_at": e.event.created_at,
                "payload": e.event.payload,
            },
            "task": {
                "id": e.event.task_id,
                "title": e.title,
                "status": e.status,
                "assignee": e.assignee,
                "tenant": e.tenant,
            },
            "text": text,
        }),
    }
}

/// The test message `notify test` posts.
pub fn test_event(board: &str) -> WebhookEvent {
    WebhookEvent {
        event: crate::kernel::Event {
            id: 0,
            task_id: "t_test".to_string(),
            run_id: None,
            kind: "test".to_string(),
            payload: Some(json!({"note": "sent by hermes-kanban notify test"})),
            created_at: chrono::Utc::now().timestamp(),
        },
        title: Some(format!("notifications from board {board} reach this hook")),
        status: None,
        assignee: None,
        tenant: None,
    }
}

/// Running delivery threads; dropped or [`Notifier::join`]ed after `stop` is set.
pub struct Notifier {
    threads: Vec<std::thread::JoinHandle<()>>,
    hooks: usize,
}

impl Notifier {
    /// How many hooks are being delivered.
    pub fn hooks(&self) -> usize {
        self.hooks
    }

    /// Wait for every delivery thread (set the stop flag first).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Start one delivery thread per configured hook on `board` (or every board). `Err` when
/// `kanban.notify` is invalid (the message names the key); a file that is not YAML at all is a
/// warning on stderr and no hooks. With no hooks nothing starts.
pub fn start(
    home: &Kanban,
    board: Option<&str>,
    stop: Arc<AtomicBool>,
) -> Result<Notifier, String> {
    let env = home.env();
    let (cfg, yaml_error) = NotifyConfig::load_lenient(env)?;
    if let Some(e) = yaml_error {
        eprintln!("hermes-kanban: warning: {e}");
    }
    let hooks = cfg.webhooks.len();
    let mut threads = Vec::new();
    // Each hook's cursor starts now on every board, so the first events after start-up are
    // delivered even before the thread's first poll.
    for slug in crate::dispatch::loop_boards(home, board) {
        if let Ok((b, _)) = home.board_or_create(Some(&slug)) {
            for h in &cfg.webhooks {
                if let Err(e) = b.lock().webhook_cursor_start(&h.name) {
                    tracing::warn!("notify {}: board {slug}: {e}", h.name);
                }
            }
        }
    }
    for hook in cfg.webhooks.clone() {
        let (home, cfg, stop, board) = (
            home.clone(),
            cfg.clone(),
            stop.clone(),
            board.map(str::to_string),
        );
        let t = std::thread::Builder::new()
            .name(format!("notify {}", hook.name))
            .spawn(move || hook_loop(&home, board.as_deref(), &hook, &cfg, &stop))
            .map_err(|e| format!("cannot start a notification thread: {e}"))?;
        threads.push(t);
    }
    Ok(Notifier { threads, hooks })
}

fn hook_loop(
    home: &Kanban,
    board: Option<&str>,
    hook: &Webhook,
    cfg: &NotifyConfig,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        for slug in crate::dispatch::loop_boards(home, board) {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let b = match home.board_or_create(Some(&slug)) {
                Ok((b, _)) => b,
                Err(e) => {
                    tracing::warn!("notify {}: board {slug}: {e}", hook.name);
                    continue;
                }
            };
            if let Err(e) = deliver_board(&b, hook, cfg, stop) {
                tracing::warn!("notify {}: board {slug}: {e}", hook.name);
            }
        }
        sleep_unless(stop, cfg.poll);
    }
}

/// Deliver `hook`'s pending events on one board. Returns how many were posted successfully.
/// The board is locked for each kernel call only, never while a POST waits on the receiver.
pub fn deliver_board(
    b: &SharedBoard,
    hook: &Webhook,
    cfg: &NotifyConfig,
    stop: &AtomicBool,
) -> crate::kernel::Result<usize> {
    let filter = WebhookFilter {
        kinds: hook.events.clone(),
        tenant: hook.tenant.clone(),
        assignee: hook.assignee.clone(),
        limit: Some(100),
    };
    let mut delivered = 0;
    loop {
        let mut cur = b.lock().webhook_cursor_start(&hook.name)?.last_event_id;
        let batch = b.lock().webhook_pending(cur, &filter)?;
        let full = batch.events.len() >= 100;
        for e in &batch.events {
            if stop.load(Ordering::SeqCst) {
                return Ok(delivered);
            }
            if !b.lock().webhook_claim(&hook.name, cur, e.event.id)? {
                // Another host moved the cursor: it delivers these; look again next poll.
                return Ok(delivered);
            }
            let prev = cur;
            cur = e.event.id;
            let slug = b.lock().slug().to_string();
            let body = payload(hook.format, &slug, &hook.name, e);
            match post_with_retries(&hook.url, &body, cfg, stop) {
                None => {
                    // Stopping: put the event back for the next host.
                    b.lock().webhook_claim(&hook.name, cur, prev)?;
                    return Ok(delivered);
                }
                Some((out, attempts)) if out.ok() => {
                    delivered += 1;
                    b.lock().webhook_record(&hook.name, Ok(()))?;
                    tracing::debug!(
                        "notify {}: event {} ({}) delivered after {attempts} attempt(s)",
                        hook.name,
                        e.event.id,
                        e.event.kind
                    );
                }
                Some((out, attempts)) => {
                    let msg = format!(
                        "event {} ({} on {}) not delivered after {attempts} attempt(s): {}",
                        e.event.id,
                        e.event.kind,
                        e.event.task_id,
                        out.error.as_deref().unwrap_or("?")
                    );
                    tracing::warn!("notify {}: {msg}", hook.name);
                    b.lock().webhook_record(&hook.name, Err(&msg))?;
                }
            }
        }
        if batch.scanned_to > cur && !b.lock().webhook_claim(&hook.name, cur, batch.scanned_to)? {
            return Ok(delivered);
        }
        if !full {
            return Ok(delivered);
        }
    }
}
