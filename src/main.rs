//! The `arnsync` binary: wiring only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use prometheus_client::registry::Registry;

use arnsync::controller::{self, Context, Options};
use arnsync::metrics::Metrics;
use arnsync::server::{self, ServerState};
use arnsync::source::{SourceOptions, Sources};

#[derive(Parser)]
#[command(
    name = "arnsync",
    version,
    about = "Syncs AWS Secrets Manager and Parameter Store into Kubernetes Secrets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (uses KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML (for kubectl apply or the Helm chart).
    Crds,
}

#[derive(Parser)]
struct RunArgs {
    /// Watch only this namespace (ClusterSecretStores are still read cluster-wide).
    #[arg(long, env = "ARNSYNC_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "ARNSYNC_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "ARNSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Window in which ExternalSecrets reading the same AWSCURRENT value share one AWS read.
    #[arg(long, env = "ARNSYNC_READ_SHARING", default_value = "2s", value_parser = duration)]
    read_sharing: Duration,
    /// Timeout of one AWS call attempt.
    #[arg(long, env = "ARNSYNC_AWS_TIMEOUT", default_value = "10s", value_parser = duration)]
    aws_timeout: Duration,
    /// How often to check AWS for rotations (AWSCURRENT moves, new parameter versions), for
    /// stores without spec.rotationCheckInterval.
    #[arg(long, env = "ARNSYNC_ROTATION_CHECK_INTERVAL", default_value = "60s", value_parser = duration)]
    rotation_check_interval: Duration,
    /// Secret changes of one workload within this window roll it once.
    #[arg(long, env = "ARNSYNC_RESTART_DEBOUNCE", default_value = "5s", value_parser = duration)]
    restart_debounce: Duration,
    /// Attempts per AWS call (retries use exponential backoff with jitter).
    #[arg(long, env = "ARNSYNC_AWS_MAX_ATTEMPTS", default_value_t = 3)]
    aws_max_attempts: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    arnsync::api::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", arnsync::api::crds_yaml());
            Ok(())
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(args)),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let client = kube::Client::try_default().await?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let sources = Sources::new(
        metrics.clone(),
        SourceOptions {
            cache_ttl: args.read_sharing,
            timeout: args.aws_timeout,
            max_attempts: args.aws_max_attempts.max(1),
            ..SourceOptions::default()
        },
    );
    let options = Options {
        namespace: args.namespace.clone(),
        rotation_check_interval: args.rotation_check_interval,
        restart_debounce: args.restart_debounce,
    };
    let ctx = Arc::new(Context::new(client, sources, metrics, options));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let ready = Arc::new(AtomicBool::new(false));
    let bound = server::serve(
        args.metrics_addr,
        ServerState {
            registry: Arc::new(registry),
            ready: ready.clone(),
        },
        stopped(),
    )
    .await?;
    tracing::info!(addr = %bound, namespace = ?args.namespace, "arnsync started; serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let (ready_tx, mut ready_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if ready_rx.wait_for(|r| *r).await.is_ok() {
            ready.store(true, Ordering::Relaxed);
        }
    });
    controller::run(ctx, ready_tx, stopped()).await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
