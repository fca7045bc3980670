//! Cluster mode (docs/CLUSTER.md): the node's NATS connection, the shared JetStream KV store,
//! and the rate limits that must hold across nodes.
//!
//! Only built when `--nats-url` is given; a node without it never touches this module's
//! network code. What is here today: shared state (section 3), its health (section 10) and
//! the shared login/join counters. Rooms spanning nodes are not built yet (section 12).

use anyhow::Context;
use quicmeet_store::{RateDecision, Store};

use crate::{error::ApiError, SharedState};

/// Bucket name prefix of the shared state (`qm_users`, `qm_meetings`, …).
pub const KV_PREFIX: &str = "qm";

/// This node's membership of a cluster.
pub struct Cluster {
    pub node_id: String,
    pub client: async_nats::Client,
}

impl Cluster {
    /// Connects to NATS and opens (creating if needed) the shared buckets.
    pub async fn connect(url: &str, node_id: Option<&str>) -> anyhow::Result<(Self, Store)> {
        let node_id = node_id.map(str::to_owned).unwrap_or_else(random_node_id);
        let client = quicmeet_store::kv::connect(url, &format!("quicmeet-{node_id}"))
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let store = Store::kv(client.clone(), KV_PREFIX)
            .await
            .context("opening the JetStream KV buckets (is JetStream enabled: nats-server -js?)")?;
        tracing::info!(node = %node_id, nats = %url, "cluster mode: state in JetStream KV");
        Ok((Self { node_id, client }, store))
    }

    /// Whether the NATS connection is up now.
    pub fn nats_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

fn random_node_id() -> String {
    let t = quicmeet_store::new_token();
    let mut id: String = t
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_lowercase() as char)
        .take(8)
        .collect();
    id.insert_str(0, "node-");
    id
}

/// The cluster-wide half of a security rate limit: counts the attempt in JetStream KV so the
/// limit holds whichever node a request reaches. A no-op on a node without a cluster (its
/// local limiter already decided). `which` is the metrics label, `scope` the counter's name.
pub async fn shared_limit(
    state: &SharedState,
    which: &'static str,
    scope: &str,
    key: &str,
    per_minute: u32,
) -> Result<(), ApiError> {
    if state.cluster.is_none() {
        return Ok(());
    }
    match state
        .store
        .rate_check(scope, key, chrono::Utc::now(), per_minute)
        .await?
    {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after_secs } => {
            state.metrics.rate_limited.inc(which);
            Err(ApiError::rate_limited(retry_after_secs))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_node_ids_are_valid_subject_tokens() {
        for _ in 0..100 {
            let id = super::random_node_id();
            assert_eq!(id.len(), 13, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }
}
