//! The HTTP router: API, health, metrics, OpenAPI and the single-page app.

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use tower_http::services::{ServeDir, ServeFile};
use utoipa::OpenApi;

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use crate::{api, SharedState};

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The whole HTTP application for `state`.
pub fn app(state: SharedState) -> Router {
    let static_dir = state.config.static_dir.clone();
    let index = static_dir.join("index.html");
    let spa: Router = if index.exists() {
        Router::new().fallback_service(ServeDir::new(&static_dir).fallback(ServeFile::new(index)))
    } else {
        Router::new().fallback(get(client_missing))
    };
    Router::new()
        .nest("/api", api::router())
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws", get(crate::media::ws::handler))
        .with_state(state.clone())
        .merge(spa)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .layer(middleware::from_fn_with_state(
            state.security.clone(),
            crate::headers::add,
        ))
}

async fn count_responses(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let class = match res.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state.metrics.http_requests.inc(class);
    res
}

/// `ok` (200), or in cluster mode `degraded` (503) while NATS is unreachable: the node keeps
/// its rooms but refuses new joins (docs/CLUSTER.md section 10).
async fn healthz(State(state): State<SharedState>) -> impl IntoResponse {
    match &state.cluster {
        None => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))),
        Some(c) if c.nats_up() => (
            StatusCode::OK,
            Json(serde_json::json!({
                "status": "ok", "nats": "up", "node": c.node_id,
                "nodes": c.net.directory.live_count(chrono::Utc::now().timestamp_millis()),
            })),
        ),
        Some(c) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "degraded", "nats": "down", "node": c.node_id})),
        ),
    }
}

/// The store's sizes, read at scrape time.
#[derive(Debug)]
struct StoreGauges {
    users: u64,
    meetings: u64,
}

impl Collector for StoreGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        crate::metrics::gauge(
            &mut enc,
            "quicmeet_users",
            "Registered accounts.",
            self.users,
        )?;
        crate::metrics::gauge(
            &mut enc,
            "quicmeet_meetings",
            "Scheduled meetings.",
            self.meetings,
        )
    }
}

async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    let media = crate::media::MediaMetricsView {
        m: state.media.metrics.clone(),
        rooms: state.media.room_count(),
        conns: state.media.connection_gauges(),
        transcode: state.media.transcoders.as_ref().map(|t| t.metrics()),
    };
    // Unreadable counts (cluster state down) show as 0 rather than failing the scrape.
    let store = StoreGauges {
        users: state.store.user_count().await.unwrap_or(0) as u64,
        meetings: state.store.meeting_count().await.unwrap_or(0) as u64,
    };
    let mut extra: Vec<Box<dyn prometheus_client::collector::Collector>> =
        vec![Box::new(store), Box::new(media)];
    if let Some(c) = &state.cluster {
        extra.push(Box::new(crate::cluster::ClusterGauges::of(c)));
    }
    let body = crate::metrics::render(&state.metrics, extra);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body)
}

async fn openapi() -> impl IntoResponse {
    Json(api::ApiDoc::openapi())
}

async fn client_missing() -> impl IntoResponse {
    (
        StatusCode::OK,
        Html(
            "<!doctype html><title>QuicMeet</title><h1>QuicMeet server is running</h1>\
             <p>The web client has not been built. Run <code>scripts/setup-client.sh</code> \
             (the README's first command does) and reload.</p>",
        ),
    )
}
