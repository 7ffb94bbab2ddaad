//! The guard in front of every route of `serve` (SPEC §7):
//!
//! 1. **Host** must be `localhost`, `127.0.0.1`, `::1`, the bound address or a configured
//!    `--allowed-host` (DNS-rebinding protection). When the server listens on every interface
//!    and no host is configured, any Host is accepted: the token requirement protects then.
//! 2. **Origin**, when a browser sends one, must name an allowed host; a mutating request
//!    (POST, PUT, PATCH, DELETE) must be same-origin: its Origin must equal the request's own
//!    `http(s)://<Host>`, and `Sec-Fetch-Site`, when sent, must be `same-origin` or `none`.
//!    Clients that send neither (curl, scripts) are not browsers and are not subject to CSRF.
//! 3. **Token**: when the server has an admin token (always, beyond loopback), every route but
//!    `/healthz` requires a token, loopback peers included; `/mcp` has its own layer (admin
//!    token or a live run token); elsewhere the admin token is sent as
//!    `Authorization: Bearer <token>`, the `hk_session` cookie, or `?token=<token>`. Opening
//!    a page with a valid `?token=` sets the cookie (`HttpOnly; SameSite=Strict`, holding the
//!    token's SHA-256, never the token) and redirects to the same URL without it, so the token
//!    leaves the address bar and history.
//!
//! Every response also gets `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//! `X-Frame-Options: DENY` and a strict Content-Security-Policy (no inline script, no
//! third-party origin), so even a rendering bug could not run injected script.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Cookie that carries the hashed admin token for the browser.
pub const SESSION_COOKIE: &str = "hk_session";

/// Content-Security-Policy of every page and API response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' \
    data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors \
    'none'";

/// The guard's configuration.
#[derive(Debug, Clone)]
pub struct Security {
    /// Admin token; `None` = no token required (loopback only).
    pub token: Option<String>,
    /// Lowercase host names (no port) accepted in Host and Origin.
    pub allowed_hosts: HashSet<String>,
    /// Whether Host is checked at all (off when bound to every interface with no host list).
    pub check_hosts: bool,
}

impl Security {
    /// The guard for a server bound to `bind` with these extra hosts and token.
    pub fn new(bind: std::net::SocketAddr, extra_hosts: &[String], token: Option<String>) -> Self {
        let mut allowed: HashSet<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for h in extra_hosts {
            allowed.insert(strip_port(h.trim()).to_ascii_lowercase());
        }
        let ip = bind.ip();
        if !ip.is_unspecified() {
            allowed.insert(ip.to_string());
        }
        Security {
            token: token.filter(|t| !t.trim().is_empty()),
            allowed_hosts: allowed,
            check_hosts: !(ip.is_unspecified() && extra_hosts.is_empty()),
        }
    }

    fn host_ok(&self, host: &str) -> bool {
        !self.check_hosts
            || self
                .allowed_hosts
                .contains(&strip_port(host).to_ascii_lowercase())
    }
}

/// `host:port`, `[v6]:port`, `[v6]` → the bare host.
fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        // A bare IPv6 address has several colons; only strip a port from host:port.
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => h,
    }
}

/// Constant-time string comparison (tokens, token hashes).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn deny(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "detail": msg }).to_string(),
    )
        .into_response()
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// Decode `%XX` and `+` in a query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

/// The token of an `Authorization: Bearer <token>` header (the scheme as `Bearer` or
/// `bearer`, the token trimmed): the one bearer parser of the web server, used by this guard
/// and by the `/mcp` layer.
pub fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

fn is_mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `scheme://host[:port]` → `host[:port]` (lowercased), `None` when malformed.
fn origin_authority(origin: &str) -> Option<String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(rest.to_ascii_lowercase())
}

fn login_page() -> Response {
    let html = "<!doctype html><html><head><meta charset=\"utf-8\"><title>hermes-kanban — sign \
        in</title></head>\
        <body><h1>hermes-kanban</h1><p>This board requires the server's token \
        (<code>serve --token</code> / <code>HERMES_KANBAN_TOKEN</code>).</p>\
        <form method=\"get\" action=\"/\"><label>Token <input name=\"token\" type=\"password\" \
        autofocus></label> \
        <button type=\"submit\">Open the board</button></form></body></html>";
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn without_token(uri: &Uri) -> String {
    let path = uri.path();
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token=") && *kv != "token")
        .collect();
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

/// The guard middleware (see the module docs): host, then origin, then token; every
/// non-MCP response gets the hardening headers.
pub async fn guard(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let is_mcp = path == "/mcp" || path.starts_with("/mcp/");
    let host = match check_host(&sec, &req) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    if let Some(r) = check_origin(&sec, &req, &host, is_mcp) {
        return r;
    }
    if let Some(token) = &sec.token
        && path != "/healthz"
        && !is_mcp
        && let Some(r) = check_token(token, &req, &path)
    {
        return r;
    }
    let mut resp = next.run(req).await;
    if !is_mcp {
        harden(&mut resp);
    }
    resp
}

/// Step 1: the Host header (or the URI's authority) must be an allowed host; returns it.
fn check_host(sec: &Security, req: &Request) -> Result<String, Box<Response>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let Some(host) = host else {
        return Err(Box::new(deny(
            StatusCode::BAD_REQUEST,
            "missing Host header",
        )));
    };
    if !sec.host_ok(&host) {
        return Err(Box::new(deny(
            StatusCode::FORBIDDEN,
            &format!(
                "host not allowed: {host:?} (DNS-rebinding protection); start serve with \
                --allowed-host <name> to accept it"
            ),
        )));
    }
    Ok(host)
}

/// Step 2: a browser's Origin must name an allowed host, and a mutating request (but `/mcp`) must
/// be same-origin by Origin and by `Sec-Fetch-Site`. Returns the refusal, if any.
fn check_origin(sec: &Security, req: &Request, host: &str, is_mcp: bool) -> Option<Response> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    if let Some(o) = origin {
        match origin_authority(o) {
            Some(auth) if sec.host_ok(&auth) => {
                if is_mutating(req.method()) && !is_mcp && auth != host.to_ascii_lowercase() {
                    return Some(deny(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "cross-origin request refused: Origin {o} does not match this server"
                        ),
                    ));
                }
            }
            _ => {
                return Some(deny(
                    StatusCode::FORBIDDEN,
                    &format!("cross-origin request refused: Origin {o:?} is not allowed"),
                ));
            }
        }
    }
    if is_mutating(req.method())
        && !is_mcp
        && let Some(site) = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Some(deny(
            StatusCode::FORBIDDEN,
            &format!("cross-site request refused (Sec-Fetch-Site: {site})"),
        ));
    }
    None
}

/// Step 3: the admin token by header, session cookie (its hash) or `?token=`. A page opened with
/// `?token=` is answered with a redirect that sets the cookie and drops the token from the URL;
/// a refusal is a 401 with a `WWW-Authenticate` challenge under `/api/`, else the login page.
/// Returns that response, or `None` when the token is good.
fn check_token(token: &str, req: &Request, path: &str) -> Option<Response> {
    // The cookie holds the token's hash: the kernel's one token hash (run tokens use it too).
    let digest = crate::kernel::token_hash(token);
    let by_header = bearer(req).is_some_and(|t| same(&t, token));
    let by_cookie = cookie(req, SESSION_COOKIE).is_some_and(|c| same(&c, &digest));
    let by_query = query_param(req.uri(), "token").is_some_and(|t| same(&t, token));
    if by_query && req.method() == Method::GET && !path.starts_with("/api/") {
        // Swap the URL token for a cookie and drop it from the address bar.
        let loc = without_token(req.uri());
        let mut resp = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, loc)
            .body(Body::empty())
            .unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={digest}; Path=/; HttpOnly; SameSite=Strict"
        )) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return Some(resp);
    }
    if by_header || by_cookie || by_query {
        return None;
    }
    if !path.starts_with("/api/") {
        return Some(login_page());
    }
    let mut r = deny(
        StatusCode::UNAUTHORIZED,
        "authorization required: send `Authorization: Bearer <token>` (the serve --token value)",
    );
    // A token that was sent but is wrong is `invalid_token` (RFC 6750 §3.1).
    let challenge = if bearer(req).is_some() {
        "Bearer error=\"invalid_token\""
    } else {
        "Bearer"
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    Some(r)
}

/// The hardening headers of every page and API response.
fn harden(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_parser_reads_only_bearer_authorization() {
        let req = |v: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, v)
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(bearer(&req("Bearer abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&req("bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(&req("Basic YWJj")), None);
        assert_eq!(bearer(&Request::new(Body::empty())), None);
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("localhost:9120"), "localhost");
        assert_eq!(strip_port("[::1]:9120"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn token_is_dropped_from_url() {
        let u: Uri = "/?token=abc&board=x".parse().unwrap();
        assert_eq!(without_token(&u), "/?board=x");
        let u: Uri = "/?token=abc".parse().unwrap();
        assert_eq!(without_token(&u), "/");
    }
}
