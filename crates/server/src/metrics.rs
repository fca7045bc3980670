//! Prometheus metrics, kept in atomics and rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A labelled family of counters with a fixed label set.
pub struct CounterVec<const N: usize> {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: [&'static str; N],
    counts: [AtomicU64; N],
}

impl<const N: usize> CounterVec<N> {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: [&'static str; N],
    ) -> Self {
        Self {
            name,
            help,
            label,
            values,
            counts: [const { AtomicU64::new(0) }; N],
        }
    }
    pub fn inc(&self, value: &str) {
        if let Some(i) = self.values.iter().position(|v| *v == value) {
            self.counts[i].fetch_add(1, Relaxed);
        }
    }
    pub fn get(&self, value: &str) -> u64 {
        self.values
            .iter()
            .position(|v| *v == value)
            .map(|i| self.counts[i].load(Relaxed))
            .unwrap_or(0)
    }
    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} counter",
            self.name, self.help, self.name
        );
        for (v, c) in self.values.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{}{{{}=\"{}\"}} {}",
                self.name,
                self.label,
                v,
                c.load(Relaxed)
            );
        }
    }
}

/// Every metric the HTTP side exports. The media plane adds its own through [`MetricsSource`].
pub struct Metrics {
    pub http_requests: CounterVec<5>,
    pub signups: CounterVec<3>,
    pub logins: CounterVec<4>,
    pub joins: CounterVec<4>,
    pub rate_limited: CounterVec<4>,
    pub mails: CounterVec<2>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http_requests: CounterVec::new(
                "quicmeet_http_responses_total",
                "HTTP responses by status class.",
                "class",
                ["1xx", "2xx", "3xx", "4xx", "5xx"],
            ),
            signups: CounterVec::new(
                "quicmeet_signups_total",
                "Sign-up attempts by outcome.",
                "outcome",
                ["created", "email_taken", "invalid"],
            ),
            logins: CounterVec::new(
                "quicmeet_logins_total",
                "Login attempts by outcome.",
                "outcome",
                ["ok", "invalid_credentials", "unverified", "invalid"],
            ),
            joins: CounterVec::new(
                "quicmeet_joins_total",
                "Join requests by outcome.",
                "outcome",
                ["ready", "waiting", "refused", "not_found"],
            ),
            rate_limited: CounterVec::new(
                "quicmeet_rate_limited_total",
                "Requests refused by a rate limit.",
                "limit",
                ["signup", "login", "resend", "join"],
            ),
            mails: CounterVec::new(
                "quicmeet_mails_total",
                "Outgoing mails by outcome.",
                "outcome",
                ["sent", "failed"],
            ),
        }
    }
}

/// Something that appends its own metric lines (the media plane, the store's gauges).
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut String);
}

impl Metrics {
    pub fn render(&self, extra: &[&dyn MetricsSource]) -> String {
        let mut out = String::with_capacity(4096);
        self.http_requests.render(&mut out);
        self.signups.render(&mut out);
        self.logins.render(&mut out);
        self.joins.render(&mut out);
        self.rate_limited.render(&mut out);
        self.mails.render(&mut out);
        for s in extra {
            s.render(&mut out);
        }
        out
    }
}

/// Writes one gauge in exposition format.
pub fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}
