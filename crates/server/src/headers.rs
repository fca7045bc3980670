//! Security headers on every answer (pages, API, metrics), and `Alt-Svc` to advertise
//! HTTP/3 on answers over TCP.
//!
//! The Content-Security-Policy allows scripts, workers and worklets from our own origin only
//! (files of the built app: no inline script, no blob:);
//! styles may be inline because Angular adds component styles at run time. `connect-src`
//! names the WebSocket and WebTransport endpoints the join answer hands out, because
//! WebTransport runs on its own port and so is not `'self'`.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// Marks a request that came over HTTP/3, which needs no `Alt-Svc`.
#[derive(Clone, Copy, Debug)]
pub struct OverHttp3;

/// The headers every answer carries.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    always: HeaderMap,
    alt_svc: Option<HeaderValue>,
}

/// `scheme://host:port` of a URL, for a CSP source.
fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + end])
}

impl SecurityHeaders {
    /// `tls`: the TCP listener speaks HTTPS. `h3_port`: where HTTP/3 listens, if it does.
    pub fn new(tls: bool, ws_url: &str, wt_url: &str, h3_port: Option<u16>) -> Self {
        let mut connect = vec!["'self'".to_owned()];
        let mut allow = |o: String| {
            if !connect.contains(&o) {
                connect.push(o);
            }
        };
        for u in [ws_url, wt_url] {
            if let Some(o) = origin(u) {
                allow(o.to_owned());
                // The client retries a WebTransport URL naming localhost on 127.0.0.1
                // (Chromium resolves localhost to ::1 only for QUIC).
                if let Some(rest) = o.strip_prefix("https://localhost:") {
                    allow(format!("https://127.0.0.1:{rest}"));
                }
            }
        }
        // Scripts, workers and the audio mixer's AudioWorklet (which loads under script-src)
        // all come from files of the built app: no blob:, no inline script.
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self'; \
             connect-src {}; object-src 'none'; base-uri 'self'; form-action 'self'; \
             frame-ancestors 'none'",
            connect.join(" ")
        );
        let mut always = HeaderMap::new();
        let mut put = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                always.insert(name, v);
            }
        };
        put(header::CONTENT_SECURITY_POLICY, &csp);
        put(
            HeaderName::from_static("permissions-policy"),
            "camera=(self), microphone=(self), display-capture=(self)",
        );
        put(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        );
        put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        put(header::REFERRER_POLICY, "same-origin");
        put(header::X_FRAME_OPTIONS, "DENY");
        if tls {
            put(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
        }
        let alt_svc = h3_port
            .filter(|_| tls)
            .and_then(|p| HeaderValue::from_str(&format!("h3=\":{p}\"; ma=86400")).ok());
        Self { always, alt_svc }
    }

    /// The `Content-Security-Policy` value, for logs and tests.
    pub fn csp(&self) -> Option<&str> {
        self.always
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
    }
}

/// Middleware adding [`SecurityHeaders`] to every answer.
pub async fn add(State(h): State<Arc<SecurityHeaders>>, req: Request, next: Next) -> Response {
    let over_h3 = req.extensions().get::<OverHttp3>().is_some();
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    for (k, v) in &h.always {
        headers.insert(k, v.clone());
    }
    if let (Some(v), false) = (&h.alt_svc, over_h3) {
        headers.insert(header::ALT_SVC, v.clone());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_media_endpoints_and_forbids_framing() {
        let h = SecurityHeaders::new(
            true,
            "wss://meet.example.org/ws",
            "https://meet.example.org:4433/wt",
            Some(443),
        );
        let csp = h.csp().unwrap();
        assert!(csp
            .contains("connect-src 'self' wss://meet.example.org https://meet.example.org:4433;"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("worker-src 'self';"), "{csp}");
        assert!(h.always.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert_eq!(h.alt_svc.unwrap(), "h3=\":443\"; ma=86400");
        let plain = SecurityHeaders::new(false, "ws://x:1/ws", "https://localhost:2/wt", Some(1));
        assert!(plain
            .csp()
            .unwrap()
            .contains("connect-src 'self' ws://x:1 https://localhost:2 https://127.0.0.1:2;"));
        assert!(!plain.always.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert!(plain.alt_svc.is_none());
    }
}
