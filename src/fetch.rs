//! The server-side URL fetcher behind `kanban_attach_url` (Hermes' tool of the same name,
//! UP §8): download one http/https URL into memory for an attachment. It owns the SSRF
//! defences and knows nothing about boards (no SQL; the caller stores the bytes through the
//! kernel):
//!
//! - only `http` and `https` URLs, without credentials in them;
//! - every hop's host is resolved once by [`CheckedResolver`]; each resolved address is
//!   checked against loopback, private, link-local, unspecified, broadcast, multicast,
//!   documentation, CGNAT, benchmarking, reserved and unique-local ranges (IPv4 and IPv6,
//!   IPv4-mapped and 6to4/NAT64 forms unwrapped), and the connection is made to exactly the
//!   checked addresses (the client is handed them; nothing resolves the name again);
//!   IP-literal hosts are checked the same way;
//! - no proxy from the environment (a proxy would resolve the name itself);
//! - at most [`MAX_REDIRECTS`] redirects, each hop checked again;
//! - the body is streamed and cut off past [`MAX_FETCH_BYTES`] (25 MiB), whatever
//!   `Content-Length` says;
//! - the file name comes from `Content-Disposition`, else the URL's last path segment; the
//!   content type from the response.
//!
//! Tests need a local server, which the checks refuse by design. [`FetchOptions::allow_address`]
//! lets exactly one address through (e.g. `127.0.0.2`) while every other loopback address —
//! including `127.0.0.1` — stays refused. It is set only by tests, through the hidden,
//! test-only `HERMES_KANBAN_TEST_FETCH_ALLOW_ADDRESS` (see [`FetchOptions::from_env`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Attachments are capped at 25 MiB (as uploads are).
pub const MAX_FETCH_BYTES: usize = crate::kernel::validate::ATTACHMENT_MAX_BYTES;
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// The hidden, test-only knob that lets one address through the SSRF checks.
pub const TEST_ALLOW_ADDRESS_ENV: &str = "HERMES_KANBAN_TEST_FETCH_ALLOW_ADDRESS";

/// How a fetch may go.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Body cap in bytes.
    pub max_bytes: usize,
    /// Whole-request time limit.
    pub timeout: Duration,
    /// TEST ONLY: one address exempt from the address checks (all others still apply).
    pub allow_address: Option<IpAddr>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_bytes: MAX_FETCH_BYTES,
            timeout: Duration::from_secs(60),
            allow_address: None,
        }
    }
}

impl FetchOptions {
    /// Defaults, plus the test-only exemption from [`TEST_ALLOW_ADDRESS_ENV`] when it holds one
    /// IP address.
    pub fn from_env(env: &crate::kernel::Env) -> FetchOptions {
        FetchOptions {
            allow_address: env
                .get(TEST_ALLOW_ADDRESS_ENV)
                .and_then(|v| v.trim().parse().ok()),
            ..FetchOptions::default()
        }
    }
}

/// A downloaded URL.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// From `Content-Disposition`, else the URL path, else `download`.
    pub filename: String,
    /// The response's `Content-Type` without parameters, if any.
    pub content_type: Option<String>,
    /// Where the body finally came from (after redirects).
    pub final_url: String,
}

/// Why a fetch was refused or failed. Messages name the URL or address and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid url {0:?}: {1}")]
    BadUrl(String, String),
    #[error("refused {url}: only http and https URLs can be fetched")]
    Scheme { url: String },
    #[error(
        "refused {url}: {host} resolves to {addr}, a {class} address; only public internet \
        addresses can be fetched"
    )]
    Blocked {
        url: String,
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("refused {url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
    #[error("refused {url}: the body is larger than {limit} bytes (25 MiB)")]
    TooLarge { url: String, limit: usize },
    #[error("could not resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("fetching {url} failed: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("fetching {url} failed: {detail}")]
    Http { url: String, detail: String },
}

/// Why `ip` must not be fetched (`None` when it is a public address).
pub fn blocked_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || o[0] == 0 {
        "unspecified (0.0.0.0/8)"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_documentation() {
        "documentation"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (CGNAT, 100.64.0.0/10)"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking (198.18.0.0/15)"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "IETF protocol assignment (192.0.0.0/24)"
    } else if o[0] >= 240 {
        "reserved (240.0.0.0/4)"
    } else {
        return None;
    })
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4 carried inside IPv6 is judged as IPv4: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
    // NAT64 64:ff9b::/96 and 6to4 2002::/16.
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4);
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0 {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return Some(v4_class(v4).unwrap_or("IPv4-compatible"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0) {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        if let Some(c) = v4_class(v4) {
            return Some(c);
        }
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        if let Some(c) = v4_class(v4) {
            return Some(c);
        }
    }
    Some(if (s[0] & 0xfe00) == 0xfc00 {
        "unique-local (fc00::/7)"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "site-local (deprecated)"
    } else if (s[0] & 0xff00) == 0xff00 {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0] == 0x0100 && s[1..4].iter().all(|x| *x == 0) {
        "discard-only (100::/64)"
    } else {
        return None;
    })
}

fn check_addr(
    url: &str,
    host: &str,
    addr: IpAddr,
    allow: Option<IpAddr>,
) -> Result<(), FetchError> {
    if Some(addr) == allow {
        return Ok(());
    }
    match blocked_class(addr) {
        Some(class) => Err(FetchError::Blocked {
            url: url.to_string(),
            host: host.to_string(),
            addr,
            class,
        }),
        None => Ok(()),
    }
}

/// Scheme, credentials and (for IP literals) the address of one hop.
fn check_url(u: &reqwest::Url, allow: Option<IpAddr>) -> Result<(), FetchError> {
    let url = u.as_str();
    if !matches!(u.scheme(), "http" | "https") {
        return Err(FetchError::Scheme {
            url: url.to_string(),
        });
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(FetchError::BadUrl(
            url.to_string(),
            "credentials in the URL are not accepted".into(),
        ));
    }
    let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
        return Err(FetchError::BadUrl(url.to_string(), "no host".into()));
    };
    // An IP-literal host is connected to directly (no resolver): check it here.
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => check_addr(url, host, ip, allow),
        Err(_) => Ok(()),
    }
}

/// Resolves a host once and hands the client only addresses that passed the checks, so the
/// address connected to is the address checked.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    allow: Option<IpAddr>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| {
                    Box::new(FetchError::Resolve {
                        host: host.clone(),
                        detail: e.to_string(),
                    }) as Box<dyn std::error::Error + Send + Sync>
                })?
                .collect();
            if found.is_empty() {
                return Err(Box::new(FetchError::Resolve {
                    host: host.clone(),
                    detail: "no addresses".into(),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            // One refused address refuses the name: a DNS answer that mixes a public and a
            // private address is an attack pattern, not a fallback.
            for a in &found {
                check_addr(&format!("host {host}"), &host, a.ip(), allow)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The error chain of a reqwest error, looking for one of ours (a refused address from the
/// resolver or a refused redirect from the policy).
fn ours(e: &reqwest::Error) -> Option<FetchError> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(f) = s.downcast_ref::<FetchError>() {
            return Some(match f {
                FetchError::Blocked {
                    url,
                    host,
                    addr,
                    class,
                } => FetchError::Blocked {
                    url: url.clone(),
                    host: host.clone(),
                    addr: *addr,
                    class,
                },
                FetchError::Scheme { url } => FetchError::Scheme { url: url.clone() },
                FetchError::TooManyRedirects { url } => {
                    FetchError::TooManyRedirects { url: url.clone() }
                }
                FetchError::Resolve { host, detail } => FetchError::Resolve {
                    host: host.clone(),
                    detail: detail.clone(),
                },
                FetchError::BadUrl(u, d) => FetchError::BadUrl(u.clone(), d.clone()),
                other => FetchError::Http {
                    url: String::new(),
                    detail: other.to_string(),
                },
            });
        }
        src = s.source();
    }
    None
}

/// `filename="…"` / `filename*=UTF-8''…` of a `Content-Disposition` header.
pub fn disposition_filename(header: &str) -> Option<String> {
    let mut plain = None;
    for part in header.split(';').map(str::trim) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        if k == "filename*" {
            let enc = v.split_once("''").map(|(_, s)| s).unwrap_or(v);
            if let Some(d) = percent_decode(enc.trim_matches('"')) {
                return Some(d).filter(|s| !s.trim().is_empty());
            }
        } else if k == "filename" {
            plain = Some(v.trim_matches('"').to_string()).filter(|s| !s.trim().is_empty());
        }
    }
    plain
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The last non-empty path segment of `u`, percent-decoded.
fn url_filename(u: &reqwest::Url) -> Option<String> {
    let seg = u.path_segments()?.rev().find(|s| !s.is_empty())?;
    percent_decode(seg).filter(|s| !s.trim().is_empty())
}

/// The HTTP client of one download: no proxy, every redirect target and every resolved
/// address checked under the SSRF rules, at most [`MAX_REDIRECTS`] redirects.
fn checked_client(url: &str, opts: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    let allow = opts.allow_address;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let e = FetchError::TooManyRedirects {
                url: attempt.url().to_string(),
            };
            return attempt.error(e);
        }
        match check_url(attempt.url(), allow) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    });
    reqwest::Client::builder()
        .no_proxy()
        .redirect(policy)
        .dns_resolver(Arc::new(CheckedResolver { allow }))
        .timeout(opts.timeout)
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("hermes-kanban/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        })
}

/// Download `url` under the SSRF rules of this module.
pub async fn fetch_url(url: &str, opts: &FetchOptions) -> Result<Fetched, FetchError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| FetchError::BadUrl(url.to_string(), e.to_string()))?;
    check_url(&parsed, opts.allow_address)?;
    let client = checked_client(url, opts)?;
    let map = |e: reqwest::Error| {
        ours(&e).unwrap_or_else(|| FetchError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        })
    };
    let mut resp = client.get(parsed).send().await.map_err(map)?;
    let final_url = resp.url().clone();
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: final_url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let too_large = || FetchError::TooLarge {
        url: final_url.to_string(),
        limit: opts.max_bytes,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > opts.max_bytes as u64)
    {
        return Err(too_large());
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(reqwest::header::CONTENT_TYPE)
        .and_then(|c| c.split(';').next().map(|s| s.trim().to_string()))
        .filter(|c| !c.is_empty());
    let filename = header(reqwest::header::CONTENT_DISPOSITION)
        .as_deref()
        .and_then(disposition_filename)
        .or_else(|| url_filename(&final_url))
        .unwrap_or_else(|| "download".to_string());
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(map)? {
        if bytes.len() + chunk.len() > opts.max_bytes {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        bytes,
        filename,
        content_type,
        final_url: final_url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        blocked_class(s.parse().unwrap()).is_some()
    }

    #[test]
    fn private_and_special_ranges_are_refused_in_every_spelling() {
        for a in [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "100.64.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(blocked(a), "{a} must be refused");
        }
        for a in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!blocked(a), "{a} is public");
        }
    }

    #[test]
    fn file_names_come_from_the_disposition_or_the_url() {
        assert_eq!(
            disposition_filename(r#"attachment; filename="report.pdf""#).as_deref(),
            Some("report.pdf")
        );
        assert_eq!(
            disposition_filename(
                "attachment; filename=a.txt; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
            )
            .as_deref(),
            Some("résumé.txt")
        );
        assert_eq!(disposition_filename("inline"), None);
        let u = reqwest::Url::parse("https://example.com/files/my%20notes.md?x=1").unwrap();
        assert_eq!(url_filename(&u).as_deref(), Some("my notes.md"));
        let root = reqwest::Url::parse("https://example.com/").unwrap();
        assert_eq!(url_filename(&root), None);
    }
}
