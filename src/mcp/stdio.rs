//! Newline-delimited JSON-RPC over a byte stream (stdin/stdout for `hermes-kanban mcp`). rmcp's
//! own framing differs in two ways SPEC §4 cannot accept: a line that is not JSON is dropped
//! without a reply (we answer `-32700 Parse error`, id null, as JSON-RPC 2.0 says), and a line
//! over 16 MiB is dropped without a reply, so a client sending a large `kanban_attach` (a
//! 25 MiB file is ~34 MB of base64) waited forever (we accept lines up to [`MAX_LINE_BYTES`]
//! and answer longer ones with `-32600`).

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Longest accepted line: a 25 MiB attachment in base64 plus the request around it, with room.
pub const MAX_LINE_BYTES: usize = 48 << 20;

/// A server transport over a reader (requests, one JSON message per line) and a writer.
pub struct LineTransport<R, W> {
    read: BufReader<R>,
    /// The line being read; kept across cancelled `receive` calls.
    line: Vec<u8>,
    /// Dropping the rest of an oversized line.
    discarding: bool,
    write: Arc<Mutex<W>>,
}

enum LineRead {
    Line,
    Oversized,
    Eof,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A transport reading requests from `read` and writing replies to `write`.
    pub fn new(read: R, write: W) -> Self {
        LineTransport {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            write: Arc::new(Mutex::new(write)),
        }
    }

    /// Read one line into `self.line`, never buffering more than [`MAX_LINE_BYTES`].
    /// Cancellation-safe: nothing is awaited between taking bytes and consuming them.
    async fn read_line(&mut self) -> LineRead {
        loop {
            let avail = match self.read.fill_buf().await {
                Ok(a) if !a.is_empty() => a,
                _ => return LineRead::Eof,
            };
            let newline = avail.iter().position(|&b| b == b'\n');
            let take = newline.map_or(avail.len(), |i| i + 1);
            let oversized = !self.discarding && self.line.len() + take > MAX_LINE_BYTES;
            if !self.discarding && !oversized {
                self.line.extend_from_slice(&avail[..take]);
            }
            self.read.consume(take);
            if self.discarding {
                self.discarding = newline.is_none();
            } else if oversized {
                self.line.clear();
                self.discarding = newline.is_none();
                return LineRead::Oversized;
            } else if newline.is_some() {
                return LineRead::Line;
            }
        }
    }

    /// Write a JSON-RPC error reply (whole line, never interleaved with a response).
    fn reply_error(&self, id: Value, code: i64, message: String) {
        let msg = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        let write = self.write.clone();
        // Spawned so that a cancelled `receive` cannot leave half a line behind.
        tokio::spawn(async move {
            let mut w = write.lock().await;
            let _ = w.write_all(&bytes).await;
            let _ = w.flush().await;
        });
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            let mut w = write.lock().await;
            w.write_all(&bytes).await?;
            w.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            match self.read_line().await {
                LineRead::Eof => return None,
                LineRead::Oversized => {
                    self.reply_error(
                        Value::Null,
                        -32600,
                        format!(
                            "Invalid request: message longer than {MAX_LINE_BYTES} bytes; \
                            attachments are limited to 25 MiB"
                        ),
                    );
                    continue;
                }
                LineRead::Line => {}
            }
            let raw = std::mem::take(&mut self.line);
            let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let err = match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(line) {
                Ok(msg) => return Some(msg),
                Err(e) => e,
            };
            match serde_json::from_slice::<Value>(line) {
                Err(_) => self.reply_error(Value::Null, -32700, format!("Parse error: {err}")),
                Ok(v) => {
                    let id = v
                        .get("id")
                        .filter(|i| i.is_string() || i.is_number())
                        .cloned();
                    // A notification is never answered (non-standard ones are ignored).
                    if id.is_some() || v.get("method").is_none() {
                        self.reply_error(
                            id.unwrap_or(Value::Null),
                            -32600,
                            format!("Invalid request: {err}"),
                        );
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.write.lock().await.flush().await
    }
}
