//! `kube-test-server --listen 127.0.0.1:0 --kubeconfig PATH`: serves until SIGTERM/SIGINT.

#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube_test_server::{ServerOptions, TestServer};

#[derive(Parser)]
#[command(about = "Kubernetes API test server (plain HTTP, in-memory)")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for the bound address.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Change events kept for watch resumption (older resourceVersions get 410 Gone).
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
    /// Interval between watch bookmarks, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    bookmark_interval_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let opts = ServerOptions {
        history_limit: args.history_limit,
        bookmark_interval: Duration::from_millis(args.bookmark_interval_ms),
    };
    let server = TestServer::start_with(args.listen, opts).await?;
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path)?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url())?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    server.shutdown().await;
    Ok(())
}
