//! `GET /api/events`: the board's event log as Server-Sent Events. Each `task_events` row is
//! one SSE message whose `id:` is the row id and whose `data:` is the event as JSON
//! (`{id, task_id, run_id, kind, payload, created_at}`). A client resumes with the
//! `Last-Event-ID` header (browsers send it when they reconnect) or `?since=<id>`; without
//! either the stream starts at the newest event. The first message is `event: hello` with the
//! starting cursor. Each connection polls the kernel's `events_after` every 250 ms (an indexed
//! range read on the primary key) and sends keep-alive comments every 15 s. Streams end on
//! server shutdown.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;

use super::state::{ApiError, WebState};
use crate::kernel::{Event, EventFilter};

/// Events fetched per poll.
const BATCH: usize = 500;

fn cursor_from(headers: &HeaderMap, q: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|s| !s.trim().is_empty())
        .or_else(|| q.get("since").cloned().filter(|s| !s.trim().is_empty()));
    match raw {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "invalid since / Last-Event-ID: {s:?} is not an event id (a non-negative \
                    integer)"
                ))
            }),
    }
}

struct Conn {
    st: Arc<WebState>,
    slug: String,
    cursor: i64,
    buf: VecDeque<Event>,
    hello: bool,
    polled: bool,
}

/// The SSE handler (see the module docs).
pub async fn events(
    State(st): State<Arc<WebState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let slug = st.resolve(q.get("board").map(String::as_str)).await?;
    let since = cursor_from(&headers, &q)?;
    let cursor = match since {
        Some(n) => n,
        None => st.on_slug(slug.clone(), |b| Ok(b.max_event_id()?)).await?,
    };
    let conn = Conn {
        st,
        slug,
        cursor,
        buf: VecDeque::new(),
        hello: false,
        polled: false,
    };
    let stream = futures_util::stream::unfold(conn, |mut c| async move {
        if !c.hello {
            c.hello = true;
            let ev = SseEvent::default()
                .event("hello")
                .retry(Duration::from_secs(2))
                .data(json!({"cursor": c.cursor, "board": c.slug}).to_string());
            return Some((Ok(ev), c));
        }
        loop {
            if let Some(e) = c.buf.pop_front() {
                let data = serde_json::to_string(&e).unwrap_or_else(|_| "{}".into());
                let ev = SseEvent::default().id(e.id.to_string()).data(data);
                return Some((Ok(ev), c));
            }
            if c.polled {
                let wait = c.st.poll_interval;
                tokio::select! {
                    _ = c.st.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            c.polled = true;
            let after = c.cursor;
            let got =
                c.st.on_slug(c.slug.clone(), move |b| {
                    Ok(b.events_after(
                        after,
                        &EventFilter {
                            limit: Some(BATCH),
                            ..Default::default()
                        },
                    )?)
                })
                .await;
            match got {
                Ok(list) => {
                    if let Some(last) = list.last() {
                        c.cursor = last.id;
                    }
                    c.buf.extend(list);
                }
                // The board went away (removed) or the DB failed: end the stream; the client
                // reconnects and gets a clear HTTP error.
                Err(_) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
