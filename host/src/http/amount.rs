//! Parsing the optional `{"by": N}` body of `POST /increment` and `/decrement`.

use super::error::ApiError;

/// The largest `by` accepted: 2^53 − 1, the largest integer every JSON client reads exactly.
pub const MAX_BY: u64 = (1 << 53) - 1;

/// Reads `by` from a request body: empty → 1; otherwise a JSON object whose `by` (if present)
/// is an integer in 1..=[`MAX_BY`]. Unknown fields are ignored.
pub fn parse_by(body: &[u8]) -> Result<u64, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(1);
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::bad_request("body must be a JSON object like {\"by\": 1}"))?;
    let Some(by) = obj.get("by") else {
        return Ok(1);
    };
    let n = by
        .as_u64()
        .filter(|_| !by.is_f64())
        .ok_or_else(|| match by.as_i64() {
            Some(_) => ApiError::bad_request("\"by\" must be positive"),
            None => ApiError::bad_request("\"by\" must be a positive integer"),
        })?;
    if n == 0 {
        return Err(ApiError::bad_request("\"by\" must be at least 1"));
    }
    if n > MAX_BY {
        return Err(ApiError::bad_request(format!(
            "\"by\" must be at most {MAX_BY}"
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert_eq!(parse_by(b""), Ok(1));
        assert_eq!(parse_by(b"  \n"), Ok(1));
        assert_eq!(parse_by(b"{}"), Ok(1));
        assert_eq!(parse_by(br#"{"by": 5, "x": true}"#), Ok(5));
        for bad in [
            &br#"{"by": 0}"#[..],
            br#"{"by": -3}"#,
            br#"{"by": 1.5}"#,
            br#"{"by": "2"}"#,
            br#"{"by": 9007199254740992}"#,
            br#"{"by": 100000000000000000000}"#,
            b"[1]",
            b"{by: 1}",
            b"nope",
        ] {
            let e = parse_by(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
