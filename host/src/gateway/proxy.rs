//! Forwarding: reads go to the next healthy node and are retried on the others; writes are
//! retried only when the connection to a node could not be made, and a node's 5xx or 408
//! answer to a write is reported as an unknown outcome (see [`write_outcome`]).

use super::metrics::{ErrorKind, GatewayMetrics};
use super::nodes::{NodeSet, Upstream};
use super::GatewayConfig;
use crate::http::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use reqwest::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest node answer the gateway reads (node answers are a few hundred bytes; `/peers`
/// of a big cluster is the largest).
pub const MAX_ANSWER: usize = 4 << 20;

/// The shared state of a running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Settings.
    pub config: GatewayConfig,
    /// The one HTTP client: its pool keeps connections to every node.
    pub client: reqwest::Client,
    /// The nodes.
    pub nodes: NodeSet,
    /// Its metrics.
    pub metrics: GatewayMetrics,
    /// The last `GET /cluster` answer.
    pub cluster: super::overview::ClusterCache,
    /// `Authorization: Bearer <node_token>`, when the config has a node token.
    pub node_auth: Option<HeaderValue>,
}

/// A node's answer, passed on to the gateway's client.
#[derive(Debug)]
pub struct Answer {
    /// The node's status.
    pub status: StatusCode,
    /// The node's body (JSON).
    pub body: Bytes,
    /// Which node answered.
    pub node: String,
}

/// A failed exchange.
#[derive(Debug)]
pub struct Failure {
    /// How it failed.
    pub kind: ErrorKind,
    /// Message with causes.
    pub message: String,
}

/// An error and its sources, `outer: inner: …` (reqwest's own message hides the cause).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a write's answer says about the node's state, when the node answered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied (2xx) or refused before anything was written (4xx but 408: bad amount, token,
    /// rate, overflow): the node's answer is passed on.
    Known,
    /// The node may have applied the write: a 5xx (the node's 503 `not durable: …` mostly
    /// comes after the write was prepared and its record handed to the log, and the next
    /// committed write counts it; its 503 `node is shut down` can come after that too, when a
    /// commit is dropped) or a 408 (the node's deadline expired while the write waited for its
    /// commit, which may still happen). The gateway answers with this status instead.
    Unknown(StatusCode),
}

/// Classifies a node's answer to a write: a 5xx becomes 502, a 408 becomes 504 (both saying
/// the outcome is unknown); anything else is the node's definite answer. No node answer
/// guarantees that nothing was written while carrying a 5xx: the node gives its 503 both
/// before and after the write is prepared, so every 5xx is treated as possibly applied.
pub fn write_outcome(status: StatusCode) -> WriteOutcome {
    if status == StatusCode::REQUEST_TIMEOUT {
        WriteOutcome::Unknown(StatusCode::GATEWAY_TIMEOUT)
    } else if status.is_server_error() {
        WriteOutcome::Unknown(StatusCode::BAD_GATEWAY)
    } else {
        WriteOutcome::Known
    }
}

/// The text of a node's error answer: its `error` field, else the body; at most 200 chars.
fn node_error_text(body: &[u8]) -> String {
    let raw = || String::from_utf8_lossy(body.get(..800).unwrap_or(body)).into_owned();
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => match map.get("error") {
            Some(serde_json::Value::String(e)) => e.clone(),
            _ => raw(),
        },
        _ => raw(),
    };
    text.chars().take(200).collect()
}

/// The gateway's answer to a write whose outcome is unknown: `status` (502 or 504) with a
/// message naming what happened, saying the write may or may not have been applied.
fn unknown_outcome(status: StatusCode, what: &str) -> ApiError {
    ApiError::new(
        status,
        format!(
            "{what}; the write may or may not have been applied (not retried, to avoid \
             counting it twice)"
        ),
    )
}

/// 503 `{"error": "no healthy node"}`.
pub fn no_healthy_node(detail: Option<&str>) -> ApiError {
    let message = match detail {
        Some(d) => format!("no healthy node ({d})"),
        None => "no healthy node".to_string(),
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

impl Gateway {
    /// One exchange with `node`: sends, reads the whole answer (bounded), records latency or
    /// the failure in the metrics. A 5xx answer is returned as an answer; the caller decides.
    /// `auth` is the `Authorization` header to send, if any.
    pub async fn exchange(
        &self,
        node: &Upstream,
        method: Method,
        path: &str,
        body: Option<String>,
        timeout: Duration,
        auth: Option<&HeaderValue>,
    ) -> Result<(StatusCode, Bytes, Duration), Failure> {
        let started = Instant::now();
        let url = node.endpoint(path).map_err(|message| Failure {
            kind: ErrorKind::Connect,
            message,
        })?;
        let mut request = self.client.request(method, url).timeout(timeout);
        if let Some(auth) = auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let result = async {
            let mut response = request.send().await?;
            let status = response.status();
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if bytes.len().saturating_add(chunk.len()) > MAX_ANSWER {
                    return Ok((status, None));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, Some(bytes)))
        }
        .await;
        let took = started.elapsed();
        match result {
            Ok((status, Some(bytes))) => {
                self.metrics.upstream(&node.url, took);
                if status.is_server_error() {
                    self.metrics.upstream_error(&node.url, ErrorKind::Status);
                }
                Ok((status, Bytes::from(bytes), took))
            }
            Ok((_, None)) => {
                self.metrics.upstream_error(&node.url, ErrorKind::Transport);
                Err(Failure {
                    kind: ErrorKind::Transport,
                    message: format!("answer larger than {MAX_ANSWER} bytes"),
                })
            }
            Err(e) => {
                let kind = ErrorKind::of(&e);
                self.metrics.upstream_error(&node.url, kind);
                Err(Failure {
                    kind,
                    message: chain(&e),
                })
            }
        }
    }

    /// Records a failed exchange on `node` (removed at once when the connection was refused).
    pub fn node_failed(&self, node: &Upstream, message: &str, definitive: bool, check: bool) {
        if node.failed(message, definitive, self.config.unhealthy_after, check) {
            self.publish_rotation();
        }
    }

    /// Updates the rotation gauges.
    pub fn publish_rotation(&self) {
        let nodes: Vec<(String, bool)> = self
            .nodes
            .all()
            .iter()
            .map(|n| (n.url.clone(), n.is_healthy()))
            .collect();
        self.metrics.rotation(&nodes);
    }

    /// The `Authorization` header for the gateway's own requests (health checks, `/cluster`):
    /// the node token's, if configured.
    pub fn own_auth(&self) -> Option<&HeaderValue> {
        self.node_auth.as_ref()
    }

    /// The `Authorization` header for a forwarded request: the node token's if configured,
    /// else the client's own header (passed through), if any.
    pub fn forward_auth<'a>(&'a self, client: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        self.node_auth.as_ref().or(client)
    }

    /// `GET path` on the next healthy node; on a transport error or a 5xx answer, on the next
    /// one, until every healthy node was tried. `auth`: the client's `Authorization` header.
    pub async fn read(
        &self,
        route: &'static str,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Answer, ApiError> {
        let auth = self.forward_auth(auth);
        let candidates = self.nodes.candidates();
        if candidates.is_empty() {
            return Err(no_healthy_node(None));
        }
        let mut errors = Vec::new();
        let mut all_refused = true;
        for (i, node) in candidates.iter().enumerate() {
            if i > 0 {
                self.metrics.retry(route);
            }
            node.count_request();
            match self
                .exchange(
                    node,
                    Method::GET,
                    path,
                    None,
                    self.config.request_timeout,
                    auth,
                )
                .await
            {
                Ok((status, body, took)) if !status.is_server_error() => {
                    let json = serde_json::from_slice::<serde_json::Value>(&body).ok();
                    node.succeeded(took, json.as_ref(), false);
                    return Ok(Answer {
                        status,
                        body,
                        node: node.url.clone(),
                    });
                }
                Ok((status, _, _)) => {
                    all_refused = false;
                    let message = format!("HTTP {status}");
                    self.node_failed(node, &message, false, false);
                    errors.push(format!("{}: {message}", node.url));
                }
                Err(failure) => {
                    let definitive = failure.kind == ErrorKind::Connect;
                    all_refused &= definitive;
                    self.node_failed(node, &failure.message, definitive, false);
                    errors.push(format!("{}: {}", node.url, failure.message));
                }
            }
        }
        if all_refused {
            return Err(no_healthy_node(Some(&format!(
                "every node refused the connection: {}",
                errors.join("; ")
            ))));
        }
        Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("no node answered: {}", errors.join("; ")),
        ))
    }

    /// `POST path` with `{"by": by}` on the next healthy node. Sent to another node only when
    /// the connection could not be made (nothing reached the node); once a request may have
    /// been sent, the answer is final, so a write is never applied twice: the node's own
    /// answer when it is definite ([`WriteOutcome::Known`]), else 502/504 saying the outcome
    /// is unknown (a node's 5xx or 408, a timeout, a broken connection).
    pub async fn write(
        &self,
        route: &'static str,
        path: &str,
        by: u64,
        auth: Option<&HeaderValue>,
    ) -> Result<Answer, ApiError> {
        let auth = self.forward_auth(auth);
        let candidates = self.nodes.candidates();
        if candidates.is_empty() {
            return Err(no_healthy_node(None));
        }
        let body = serde_json::json!({ "by": by }).to_string();
        let mut refused = Vec::new();
        for (i, node) in candidates.iter().enumerate() {
            if i > 0 {
                self.metrics.retry(route);
            }
            node.count_request();
            let result = self
                .exchange(
                    node,
                    Method::POST,
                    path,
                    Some(body.clone()),
                    self.config.request_timeout,
                    auth,
                )
                .await;
            match result {
                Ok((status, body, took)) => match write_outcome(status) {
                    WriteOutcome::Known => {
                        let json = serde_json::from_slice::<serde_json::Value>(&body).ok();
                        node.succeeded(took, json.as_ref(), false);
                        return Ok(Answer {
                            status,
                            body,
                            node: node.url.clone(),
                        });
                    }
                    WriteOutcome::Unknown(answer) => {
                        let error = node_error_text(&body);
                        self.node_failed(node, &format!("HTTP {status}: {error}"), false, false);
                        return Err(unknown_outcome(
                            answer,
                            &format!(
                                "node {} answered HTTP {} ({error}) after the request was sent",
                                node.url,
                                status.as_u16()
                            ),
                        ));
                    }
                },
                Err(failure) if failure.kind == ErrorKind::Connect => {
                    self.node_failed(node, &failure.message, true, false);
                    refused.push(format!("{}: {}", node.url, failure.message));
                }
                Err(failure) => {
                    self.node_failed(node, &failure.message, false, false);
                    let (status, what) = if failure.kind == ErrorKind::Timeout {
                        (
                            StatusCode::GATEWAY_TIMEOUT,
                            format!(
                                "node {} did not answer within {:?}",
                                node.url, self.config.request_timeout
                            ),
                        )
                    } else {
                        (
                            StatusCode::BAD_GATEWAY,
                            format!("connection to node {} failed", node.url),
                        )
                    };
                    return Err(unknown_outcome(
                        status,
                        &format!("{what} after the request was sent: {}", failure.message),
                    ));
                }
            }
        }
        Err(no_healthy_node(Some(&format!(
            "every node refused the connection, nothing was written: {}",
            refused.join("; ")
        ))))
    }
}

/// A handle to the gateway state, cloned into every task.
pub type GatewayHandle = Arc<Gateway>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_answered_5xx_or_408_has_an_unknown_outcome() {
        let code = |c: u16| StatusCode::from_u16(c).unwrap_or(StatusCode::OK);
        for (node, gateway) in [(503, 502), (500, 502), (504, 502), (408, 504)] {
            assert_eq!(
                write_outcome(code(node)),
                WriteOutcome::Unknown(code(gateway)),
                "{node}"
            );
        }
        for node in [200, 400, 401, 409, 413, 429] {
            assert_eq!(write_outcome(code(node)), WriteOutcome::Known, "{node}");
        }
        assert_eq!(
            node_error_text(br#"{"error": "not durable: disk"}"#),
            "not durable: disk"
        );
        assert_eq!(node_error_text(&[b'x'; 5000]).len(), 200);
    }
}
