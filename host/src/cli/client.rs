//! `tally get|inc|dec [NAME]` and `tally list`: a small HTTP client for nodes and gateways.
//!
//! Exit codes a script can rely on: 0 success; 1 the server answered with an error (its
//! `error` message is printed to stderr); 2 bad usage (from clap); 3 the server could not be
//! reached or answered something that is not Tally's JSON.

use super::{ClientArgs, GetArgs, WriteArgs};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// Which write.
#[derive(Debug, Clone, Copy)]
pub enum CounterOp {
    /// POST /increment.
    Increment,
    /// POST /decrement.
    Decrement,
}

const UNREACHABLE: u8 = 3;

fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
}

fn base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// Exit code of a name that is not a counter name (as clap's bad usage).
const USAGE: u8 = 2;

/// The path prefix of counter `name` (`""` for the default counter), or why it is no name.
fn counter_path(name: Option<&str>) -> Result<String, ExitCode> {
    match name {
        None => Ok(String::new()),
        Some(n) => match tally_core::named::CounterName::new(n) {
            Ok(_) => Ok(format!("/counters/{n}")),
            Err(e) => {
                eprintln!("error: {n:?} is not a counter name: {e}");
                Err(ExitCode::from(USAGE))
            }
        },
    }
}

/// `tally get [NAME]`.
pub async fn get(args: GetArgs) -> ExitCode {
    let prefix = match counter_path(args.name.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let path = if prefix.is_empty() {
        "/counter".to_string()
    } else {
        prefix
    };
    let url = format!("{}{path}", base(&args.target.node));
    let answer = match client() {
        Ok(c) => c.get(&url).send().await,
        Err(e) => Err(e),
    };
    finish(answer, args.target.json, &url).await
}

/// `tally list`: `default V`, then `NAME V` per named counter.
pub async fn list(args: ClientArgs) -> ExitCode {
    let url = format!("{}/counters", base(&args.node));
    let answer = match client() {
        Ok(c) => c.get(&url).send().await,
        Err(e) => Err(e),
    };
    let text = match read_answer(answer, args.json, &url).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    if args.json {
        println!("{}", text.trim_end());
        return ExitCode::SUCCESS;
    }
    #[derive(serde::Deserialize)]
    struct List {
        default: i128,
        counters: std::collections::BTreeMap<String, i128>,
    }
    match serde_json::from_str::<List>(&text) {
        Ok(l) => {
            println!("default {}", l.default);
            for (name, v) in l.counters {
                println!("{name} {v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {url} answered without a counter list: {e}");
            ExitCode::from(UNREACHABLE)
        }
    }
}

/// `tally inc [NAME]` / `tally dec [NAME]`.
pub async fn write(args: WriteArgs, op: CounterOp) -> ExitCode {
    let path = match op {
        CounterOp::Increment => "increment",
        CounterOp::Decrement => "decrement",
    };
    let prefix = match counter_path(args.name.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let url = format!("{}{prefix}/{path}", base(&args.target.node));
    let body = serde_json::json!({ "by": args.by });
    let answer = match client() {
        Ok(c) => c.post(&url).json(&body).send().await,
        Err(e) => Err(e),
    };
    finish(answer, args.target.json, &url).await
}

/// The `value` of an answer, read exactly (a counter's value may lie outside i64).
#[derive(serde::Deserialize)]
struct ExactValue {
    value: i128,
}

async fn finish(
    answer: Result<reqwest::Response, reqwest::Error>,
    json: bool,
    url: &str,
) -> ExitCode {
    let text = match read_answer(answer, json, url).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let body: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => return ExitCode::from(UNREACHABLE),
    };
    if json {
        // As answered: `Value` would round a value outside i64/u64 to a float.
        println!("{}", text.trim_end());
        return ExitCode::SUCCESS;
    }
    match body.get("value") {
        Some(v) => {
            match serde_json::from_str::<ExactValue>(&text) {
                Ok(exact) => println!("{}", exact.value),
                Err(_) => println!("{v}"),
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: {url} answered without a value");
            ExitCode::from(UNREACHABLE)
        }
    }
}

/// The body of a successful answer in Tally's JSON, or the exit code after saying why not.
async fn read_answer(
    answer: Result<reqwest::Response, reqwest::Error>,
    json: bool,
    url: &str,
) -> Result<String, ExitCode> {
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach {url}: {e}");
            return Err(ExitCode::from(UNREACHABLE));
        }
    };
    let status = response.status();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {url} answered {status} without a readable body: {e}");
            return Err(ExitCode::from(UNREACHABLE));
        }
    };
    let body: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {url} answered {status} without Tally JSON: {e}");
            return Err(ExitCode::from(UNREACHABLE));
        }
    };
    if !status.is_success() {
        let msg = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        eprintln!("error: {status}: {msg}");
        if json {
            println!("{}", text.trim_end());
        }
        return Err(ExitCode::FAILURE);
    }
    Ok(text)
}
