//! A stand-alone gateway until `tally gateway` is wired into the CLI:
//!
//! ```sh
//! cargo run -p tally --example gateway -- --listen 127.0.0.1:0 --nodes http://127.0.0.1:8000,http://127.0.0.1:8001
//! cargo run -p tally --example gateway -- --listen 127.0.0.1:0 --discovery http://127.0.0.1:7000
//! ```
//!
//! Prints `dashboard  http://ADDR/` once listening; runs until Ctrl-C.

use anyhow::{bail, Context};
use tally::gateway::{serve, GatewayConfig, NodeSource};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .init();
    let mut listen = "127.0.0.1:8080".to_string();
    let mut source = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a flag without its value");
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--nodes" => {
                let urls = value()?.split(',').map(str::to_string).collect();
                source = Some(NodeSource::Static(urls));
            }
            "--discovery" => source = Some(NodeSource::Discovery(value()?)),
            other => bail!("unknown argument {other}"),
        }
    }
    let source = source.context("--nodes URL,... or --discovery URL is required")?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("gateway    http://{addr}");
    println!("dashboard  http://{addr}/");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        GatewayConfig::new(source),
        shutdown.clone(),
    ));
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    server.await??;
    Ok(())
}
