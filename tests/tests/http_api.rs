//! The node's HTTP API over real HTTP: routes, answers, and bad input that changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{json, Value};
use std::time::Duration;
use tally::service::{NodeOptions, NodeService};

async fn service() -> NodeService {
    NodeService::start(NodeOptions {
        sync_interval: Duration::from_millis(100),
        ..NodeOptions::loopback()
    })
    .await
    .unwrap()
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<&'static str>,
) -> (u16, Value) {
    let mut req = c.request(method, url);
    if let Some(b) = body {
        req = req.body(b).header("content-type", "application/json");
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_json() {
    let s = service().await;
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.url());
    let id = s.node.id();

    let (st, v) = call(&c, reqwest::Method::GET, u("/counter"), None).await;
    assert_eq!((st, v), (200, json!({"value": 0, "node": id})));
    let (st, v) = call(&c, reqwest::Method::POST, u("/increment"), None).await;
    assert_eq!((st, v["value"].clone()), (200, json!(1)));
    let (st, v) = call(
        &c,
        reqwest::Method::POST,
        u("/increment"),
        Some(r#"{"by": 10}"#),
    )
    .await;
    assert_eq!((st, v["value"].clone()), (200, json!(11)));
    let (st, v) = call(
        &c,
        reqwest::Method::POST,
        u("/decrement"),
        Some(r#"{"by": 3}"#),
    )
    .await;
    assert_eq!((st, v["value"].clone()), (200, json!(8)));
    let (_, v) = call(&c, reqwest::Method::GET, u("/local-counter"), None).await;
    assert_eq!(v, json!({"node": id, "inc": 11, "dec": 3, "value": 8}));
    let (_, v) = call(&c, reqwest::Method::GET, u("/state"), None).await;
    assert_eq!(v["inc"], json!({ id.clone(): 11 }));
    assert_eq!(v["dec"], json!({ id.clone(): 3 }));
    let (st, v) = call(&c, reqwest::Method::GET, u("/peers"), None).await;
    assert_eq!((st, v), (200, json!([])));
    let (st, v) = call(&c, reqwest::Method::GET, u("/health"), None).await;
    assert_eq!((st, v["status"].clone()), (200, json!("ok")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_4xx_json_and_changes_nothing() {
    let s = service().await;
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.url());
    s.node.increment(5).unwrap();
    for body in [
        r#"{"by": 0}"#,
        r#"{"by": -1}"#,
        r#"{"by": 2.5}"#,
        r#"{"by": "3"}"#,
        r#"{"by": 1e30}"#,
        r#"{"by": 18446744073709551616}"#,
        r#"{"by": 9007199254740993}"#,
        "not json",
        "[1,2]",
    ] {
        for route in ["/increment", "/decrement"] {
            let (st, v) = call(&c, reqwest::Method::POST, u(route), Some(body)).await;
            assert_eq!(st, 400, "{route} {body}");
            assert!(v["error"].is_string(), "{route} {body}: {v}");
        }
    }
    let (st, v) = call(&c, reqwest::Method::GET, u("/nope"), None).await;
    assert_eq!(st, 404);
    assert!(v["error"].is_string());
    let (st, v) = call(&c, reqwest::Method::GET, u("/increment"), None).await;
    assert_eq!(st, 405);
    assert!(v["error"].is_string());
    let (st, _) = call(&c, reqwest::Method::DELETE, u("/counter"), None).await;
    assert_eq!(st, 405);
    let huge = format!("{{\"by\": 1, \"pad\": \"{}\"}}", "x".repeat(10_000));
    let r = c.post(u("/increment")).body(huge).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_string());
    assert_eq!(s.node.value(), 5, "nothing changed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_loopback_by_default() {
    let s = service().await;
    assert!(s.http_addr.ip().is_loopback());
    assert!(s.node.local_addr().ip().is_loopback());
    s.stop().await;
}

/// The `"value"` number of a JSON answer, as written (serde_json's `Value` would round a number
/// outside `i64`/`u64` to `f64`).
fn value_literal(body: &str) -> Option<&str> {
    let rest = body.split_once("\"value\":")?.1;
    let end = rest.find([',', '}'])?;
    Some(rest.get(..end)?.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_beyond_i64_are_answered_exactly() {
    // A counter's value is Σinc − Σdec over u64 totals: it spans ±(2^64 − 1) per entry, far
    // beyond i64. A peer (or enough writes) can take it there; every route must still answer.
    let s = service().await;
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.url());
    s.node.decrement(u64::MAX).unwrap();
    let below = (-i128::from(u64::MAX)).to_string();
    for route in ["/counter", "/local-counter", "/state"] {
        let r = c.get(u(route)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {route}");
        let body = r.text().await.unwrap();
        assert_eq!(
            value_literal(&body),
            Some(below.as_str()),
            "GET {route}: {body}"
        );
    }
    // A write answers the exact value too.
    let r = c.post(u("/increment")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body = r.text().await.unwrap();
    let after = (1 - i128::from(u64::MAX)).to_string();
    assert_eq!(value_literal(&body), Some(after.as_str()), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_counters_have_their_own_routes() {
    use reqwest::Method;
    let s = service().await;
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.url());
    let id = s.node.id();

    let (st, v) = call(&c, Method::GET, u("/counters"), None).await;
    assert_eq!((st, v), (200, json!({"default": 0, "counters": {}})));
    let (st, v) = call(&c, Method::GET, u("/counters/doors"), None).await;
    assert_eq!((st, v["code"].clone()), (404, json!("not_found")));
    let (st, v) = call(
        &c,
        Method::POST,
        u("/counters/doors/increment"),
        Some(r#"{"by": 5}"#),
    )
    .await;
    assert_eq!(
        (st, v),
        (200, json!({"name": "doors", "value": 5, "node": id}))
    );
    let (st, v) = call(&c, Method::POST, u("/counters/doors/decrement"), None).await;
    assert_eq!((st, v["value"].clone()), (200, json!(4)));
    let (st, _) = call(
        &c,
        Method::POST,
        u("/counters/parts.A/increment"),
        Some(r#"{"by": 2}"#),
    )
    .await;
    assert_eq!(st, 200);
    // The default counter is its own.
    let (_, v) = call(&c, Method::POST, u("/increment"), None).await;
    assert_eq!(v["value"], json!(1));
    let (st, v) = call(&c, Method::GET, u("/counters/doors"), None).await;
    assert_eq!(
        (st, v),
        (200, json!({"name": "doors", "value": 4, "node": id}))
    );
    let (_, v) = call(&c, Method::GET, u("/counters"), None).await;
    assert_eq!(
        v,
        json!({"default": 1, "counters": {"doors": 4, "parts.A": 2}})
    );
    assert_eq!(s.node.value(), 1);

    // Bad names and bodies: 400 with a code, nothing changes.
    for path in [
        "/counters/no%20space/increment",
        "/counters/%C3%BC/increment",
    ] {
        let (st, v) = call(&c, Method::POST, u(path), None).await;
        assert_eq!((st, v["code"].clone()), (400, json!("bad_name")), "{path}");
    }
    let long = format!("/counters/{}/increment", "x".repeat(65));
    let (st, v) = call(&c, Method::POST, u(&long), None).await;
    assert_eq!((st, v["code"].clone()), (400, json!("bad_name")));
    let (st, _) = call(
        &c,
        Method::POST,
        u("/counters/doors/increment"),
        Some(r#"{"by": -1}"#),
    )
    .await;
    assert_eq!(st, 400);
    let (_, v) = call(&c, Method::GET, u("/counters"), None).await;
    assert_eq!(
        v,
        json!({"default": 1, "counters": {"doors": 4, "parts.A": 2}})
    );

    // Removal: gone from reads, 404 the second time; counting again starts from zero.
    let (st, v) = call(&c, Method::DELETE, u("/counters/doors"), None).await;
    assert_eq!(
        (st, v),
        (200, json!({"name": "doors", "removed": true, "node": id}))
    );
    let (st, _) = call(&c, Method::DELETE, u("/counters/doors"), None).await;
    assert_eq!(st, 404);
    let (st, _) = call(&c, Method::GET, u("/counters/doors"), None).await;
    assert_eq!(st, 404);
    let (_, v) = call(&c, Method::POST, u("/counters/doors/increment"), None).await;
    assert_eq!(v["value"], json!(1));
    let (_, v) = call(&c, Method::GET, u("/counters"), None).await;
    assert_eq!(
        v,
        json!({"default": 1, "counters": {"doors": 1, "parts.A": 2}})
    );
    let metrics = c
        .get(u("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "tally_named_counters 2",
        "tally_named_value{counter=\"doors\"} 1",
        "tally_named_value{counter=\"parts.A\"} 2",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    s.stop().await;
}
