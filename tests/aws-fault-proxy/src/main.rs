//! `aws-fault-proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:PORT`
//!
//! Prints exactly one line, `listening on http://127.0.0.1:PORT`, then serves until SIGTERM or
//! SIGINT. Faults and counters are driven through the control API (`/__proxy/`, see the
//! library's `control` module).

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use aws_fault_proxy::FaultProxy;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Parser)]
#[command(about = "Call-counting, fault-injecting HTTP proxy for AWS APIs (in front of moto)")]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Upstream base URL, e.g. the moto server: http://127.0.0.1:5000
    #[arg(long)]
    upstream: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let proxy = FaultProxy::start_on(args.listen, &args.upstream)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", proxy.url())?;
        out.flush()?;
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(proxy);
    Ok(())
}
