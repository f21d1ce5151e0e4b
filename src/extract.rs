//! Request body extraction. `actix_web::web::Json` reports a type error without naming
//! the field; this `Json` names it (`email: invalid type: integer ...`), and maps every
//! failure to the right problem code: `invalid_json`, `validation_failed`,
//! `payload_too_large` or `unsupported_media_type`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parse JSON bytes, naming the path of the offending field on a data error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                let detail = if path == "." || path.is_empty() {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                Err(ApiError::Validation(detail))
            } else {
                Err(ApiError::new(ErrorCode::InvalidJson, inner.to_string()))
            }
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body as application/json",
                ));
            }
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "body exceeds server.max_body_bytes",
                    )
                } else {
                    ApiError::new(ErrorCode::InvalidJson, format!("reading body: {e}"))
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        nested: Option<Vec<u8>>,
    }

    #[test]
    fn data_errors_name_the_field() {
        let e = parse::<Body>(br#"{"email": 5}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert!(e.to_string().starts_with("email: "), "{e}");
        let e = parse::<Body>(br#"{"email": "a", "nested": [1, "x"]}"#).unwrap_err();
        assert!(e.to_string().starts_with("nested[1]: "), "{e}");
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        let e = parse::<Body>(br#"{"email": "#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidJson);
    }
}
