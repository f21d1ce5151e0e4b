//! The error-code table stays honest: every code in it is produced somewhere.

use parley::error::ErrorCode;

/// Where each code can be produced, as it is spelled in the source.
fn producers(code: ErrorCode) -> &'static [&'static str] {
    match code {
        ErrorCode::ValidationFailed => &["ApiError::Validation("],
        ErrorCode::RateLimited => &["ApiError::RateLimited {"],
        ErrorCode::Internal => &["ApiError::Unexpected(", "anyhow::anyhow!("],
        ErrorCode::NotFound => &["ApiError::not_found("],
        ErrorCode::Forbidden => &["ApiError::forbidden(", "require_admin()"],
        ErrorCode::Conflict => &["ApiError::conflict("],
        _ => &[],
    }
}

fn sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // The table itself does not count as a use.
            let text = match text.find("/// A problem+json body.") {
                Some(end) if path.ends_with("error.rs") => text[end..].to_owned(),
                _ => text,
            };
            out.push_str(&text);
        }
    }
}

#[test]
fn every_error_code_is_used() {
    let mut src = String::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut src,
    );
    for code in ErrorCode::ALL {
        let spelled = format!("ErrorCode::{code:?}");
        let used = src.contains(&spelled) || producers(code).iter().any(|p| src.contains(p));
        assert!(
            used,
            "error code {} is in the table but never produced",
            code.as_str()
        );
    }
}
