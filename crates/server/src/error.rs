//! The API's error type: every failure a user can meet, with a stable code and clear text.

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use quicmeet_store::StoreError;
use serde_json::json;

/// An error answered as `{"error":{"code":…,"message":…}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Please sign in first.",
        )
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn meeting_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "meeting_not_found",
            "No meeting has this code. Check the link and try again.",
        )
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("Too many attempts. Try again in {retry_after_secs} seconds."),
            retry_after_secs: Some(retry_after_secs),
        }
    }
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on the server. Please try again.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Self::new(
                StatusCode::CONFLICT,
                "email_taken",
                "An account with this e-mail address already exists. Log in instead.",
            ),
            StoreError::TokenInvalid => Self::bad_request(
                "token_invalid",
                "This link is not valid or has already been used.",
            ),
            StoreError::TokenExpired => Self::new(
                StatusCode::GONE,
                "token_expired",
                "This link has expired. Ask for a new one.",
            ),
            StoreError::Unavailable(_) | StoreError::Contended(_) => {
                tracing::warn!(error = %e, "cluster state unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    "The meeting service cannot reach its cluster right now. Try again shortly.",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut res = (self.status, body).into_response();
        if let Some(s) = self.retry_after_secs {
            if let Ok(v) = s.to_string().parse() {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match r {
            R::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_content_type",
                "Send the body as JSON with Content-Type: application/json.",
            ),
            R::JsonSyntaxError(e) => Self::bad_request(
                "bad_json",
                format!("The body is not valid JSON: {}", e.body_text()),
            ),
            R::JsonDataError(e) => Self::bad_request(
                "invalid_field",
                format!(
                    "A field is missing or has the wrong type: {}",
                    e.body_text()
                ),
            ),
            R::BytesRejection(_) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "The request body is too large.",
            ),
            other => Self::bad_request("bad_request", other.body_text()),
        }
    }
}

/// `Json` whose rejections are answered as [`ApiError`]s.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;
