//! Prometheus metrics: counted in plain atomics where they happen, written out by
//! `prometheus-client` (OpenMetrics text) when `/metrics` is scraped.
//!
//! The counting stays in our own atomics on purpose: the media plane counts on its per-frame
//! path, where one relaxed `fetch_add` is all we want to pay, and a fixed label set lets every
//! series show from the start (at 0). `prometheus-client` owns the exposition format: names,
//! `# HELP`/`# TYPE` lines, escaping, the `_total` suffix of counters, histogram buckets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

/// The content type of the page [`render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A labelled family of counters with a fixed label set.
#[derive(Debug)]
pub struct CounterVec<const N: usize> {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: [&'static str; N],
    counts: [AtomicU64; N],
}

impl<const N: usize> CounterVec<N> {
    /// `name` is the sample's name, ending in `_total`.
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
    fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let mut family =
            enc.encode_descriptor(family_name(self.name), self.help, None, MetricType::Counter)?;
        for (v, c) in self.values.iter().zip(&self.counts) {
            let labels = [(self.label, *v)];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&c.load(Relaxed), None)?;
        }
        Ok(())
    }
}

/// The name prometheus-client wants for a counter: the sample name without `_total`, which
/// the encoder appends again. Tables here keep the full sample names, as scrapers see them.
fn family_name(sample: &str) -> &str {
    sample.strip_suffix("_total").unwrap_or(sample)
}

/// Writes one counter without labels.
pub fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeCounterValue,
) -> fmt::Result {
    enc.encode_descriptor(family_name(name), help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// Writes one gauge without labels.
pub fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// Every metric the HTTP side exports. The media plane adds its own through [`render`].
#[derive(Debug)]
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

/// The HTTP side's counters as a collector.
#[derive(Debug)]
struct HttpCollector(Arc<Metrics>);

impl Collector for HttpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.0;
        m.http_requests.encode(&mut enc)?;
        m.signups.encode(&mut enc)?;
        m.logins.encode(&mut enc)?;
        m.joins.encode(&mut enc)?;
        m.rate_limited.encode(&mut enc)?;
        m.mails.encode(&mut enc)
    }
}

/// Renders `metrics` and every other collector (the media plane, the store's gauges) as one
/// OpenMetrics page.
pub fn render(metrics: &Arc<Metrics>, extra: Vec<Box<dyn Collector>>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HttpCollector(metrics.clone())));
    for c in extra {
        registry.register_collector(c);
    }
    let mut out = String::with_capacity(8192);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_keep_their_sample_names_and_labels() {
        let m = Arc::new(Metrics::default());
        m.rate_limited.inc("signup");
        m.rate_limited.inc("signup");
        m.rate_limited.inc("no such label");
        let text = render(&m, Vec::new());
        assert!(text.contains("quicmeet_rate_limited_total{limit=\"signup\"} 2\n"));
        assert!(text.contains("quicmeet_rate_limited_total{limit=\"join\"} 0\n"));
        assert!(text.contains("# TYPE quicmeet_http_responses counter\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
