//! Security headers on everything the broker answers.
//!
//! - Every answer: `X-Content-Type-Options: nosniff` (a file is only ever
//!   what its `Content-Type` says) and `Referrer-Policy: no-referrer` (the
//!   console's and the mirror's addresses go nowhere).
//! - API answers (`/v1/…`): `Cache-Control: no-store`, since they carry
//!   codes, device tokens and stream tickets that no cache may keep.
//! - Pages (`text/html`): a `Content-Security-Policy` header. The agent
//!   console's policy allows only its own scripts and styles and may not be
//!   framed by anyone (`frame-ancestors 'none'`, and `X-Frame-Options:
//!   DENY` for old browsers), so no page can overlay it to trick an agent
//!   into clicks. The mirror document, which the console frames to draw the
//!   visitor's page in, runs no script at all and may be framed only by the
//!   broker's own pages. Every other page (the demo shop, the support page,
//!   the examples) gets the strict policy the widget is built to work
//!   under; the `<meta>` policies in the pages stay as a second line.
//!
//! The script-tag bundle at `/sdk/` gets no CSP or frame header: it is
//! loaded by other sites' pages, which set their own.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The agent console (`/agent.html`).
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; object-src 'none'; frame-src 'self'; frame-ancestors 'none'";

/// The document the console draws the visitor's page into
/// (`/mirror.html`): the visitor site's styles, images and fonts, no script.
/// No `base-uri` limit: the console adds a `<base>` with the visitor page's
/// address so the page's relative URLs resolve.
pub const MIRROR_CSP: &str = "default-src 'none'; script-src 'none'; \
     style-src * data: 'unsafe-inline'; img-src * data:; font-src * data:; media-src *; \
     form-action 'none'; frame-ancestors 'self'";

/// Every other page the broker serves.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; object-src 'none'; frame-ancestors 'none'";

/// Middleware adding the headers above to every answer.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    let html = is_html(response.headers());
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if path.starts_with("/v1/") {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if html {
        let csp = page_policy(&path);
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
        if csp != MIRROR_CSP {
            headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
    response
}

/// The policy for the page at `path`.
pub fn page_policy(path: &str) -> &'static str {
    match path {
        "/agent.html" => CONSOLE_CSP,
        "/mirror.html" => MIRROR_CSP,
        _ => PAGE_CSP,
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_gets_its_policy() {
        assert_eq!(page_policy("/agent.html"), CONSOLE_CSP);
        assert_eq!(page_policy("/mirror.html"), MIRROR_CSP);
        assert_eq!(page_policy("/"), PAGE_CSP);
        assert_eq!(page_policy("/examples/strict-csp/"), PAGE_CSP);
        for csp in [CONSOLE_CSP, PAGE_CSP] {
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(!csp.contains("unsafe-inline"), "{csp}");
        }
        assert!(MIRROR_CSP.contains("script-src 'none'"));
        assert!(MIRROR_CSP.contains("frame-ancestors 'self'"));
    }
}
