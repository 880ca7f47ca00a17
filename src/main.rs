//! The `arnsync` binary: wiring only.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use arnsync::controller::{self, Context, KubeTokens, Options};
use arnsync::cost::Prices;
use arnsync::leader::{self, Elector};
use arnsync::metrics::Metrics;
use arnsync::server::{self, Phase, Readiness, ServerState};
use arnsync::source::{Rates, SourceOptions, Sources};

/// How long a stopping leader waits for in-flight reconciles before it lets go anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

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
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (for kubectl apply or the Helm chart).
    Crds,
    /// Convert External Secrets Operator manifests into arnsync manifests.
    #[command(long_about = CONVERT_ABOUT)]
    Convert(ConvertArgs),
    /// Print the least-privilege IAM policy of each AWS identity the stores use, or check one.
    #[command(name = "iam-policy", long_about = IAM_POLICY_ABOUT)]
    IamPolicy(IamPolicyArgs),
}

const IAM_POLICY_ABOUT: &str = "\
Print the least-privilege IAM policy of each AWS identity the stores use, or check one.

Reads the SecretStores, ClusterSecretStores, ExternalSecrets and ClusterExternalSecrets of the \
cluster (KUBECONFIG, ~/.kube/config, or the in-cluster service account), or of the manifests \
given with -f (External Secrets Operator manifests are converted first, as `arnsync convert` \
does). The identity of a store is the principal that reads: the last role of its role chain, \
else the ServiceAccount's role (auth.jwt), the static keys' user (auth.secretRef), or the \
operator's own identity (`operator`). One identity: its policy. Several: a JSON object keyed by \
identity, each with the stores that use it and its policy.

Exit codes: 0 policy written, or --check found the policy grants exactly what is needed; \
1 --check: a needed permission is missing; 3 --check: everything needed is granted, and more \
(each excess permission is reported); 2 usage, I/O or parse error.";

#[derive(Parser)]
struct IamPolicyArgs {
    /// Manifest files, or folders to search for *.yaml and *.yml files (recursively);
    /// repeatable. None: the objects of the cluster.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    paths: Vec<std::path::PathBuf>,
    /// The AWS account of ARNs built from secret and parameter names. Default: the account of
    /// the store's role, else `*`.
    #[arg(long)]
    account: Option<String>,
    /// Only the policy of this identity (as the output labels it).
    #[arg(long)]
    identity: Option<String>,
    /// Compare this IAM policy (JSON) with the one needed, and report missing and excess
    /// permissions (see the exit codes).
    #[arg(long, value_name = "POLICY.json")]
    check: Option<std::path::PathBuf>,
    /// Ask AWS (DescribeSecret, ListSecrets, DescribeParameters, with the operator's
    /// credentials and each store's roles) which KMS keys encrypt what is read, and grant
    /// kms:Decrypt on the customer-managed ones.
    #[arg(long)]
    resolve_kms: bool,
}

const CONVERT_ABOUT: &str = "\
Convert External Secrets Operator manifests into arnsync manifests.

SecretStore, ClusterSecretStore, ExternalSecret and ClusterExternalSecret of \
external-secrets.io/v1, v1beta1 and v1alpha1 become arnsync.io/v1alpha1 (v1alpha1 shapes are \
rewritten, ESO's status and server-set metadata are dropped). Each is then checked as the \
cluster and the operator would check it: arnsync's CRD schema and its rules, then the \
operator's own checks. A document that cannot be carried over (another provider, a generator, \
a PushSecret, a field arnsync does not have, ...) is left out of the output, and stderr gets \
one line per problem: FILE#INDEX KIND NAMESPACE/NAME: FIELD: what and what to do.

Documents of any other kind (ConfigMap, Namespace, ...) and documents already in arnsync.io \
pass through unchanged. Documents that are unchanged, or changed only in their apiVersion \
line, keep their comments.

Exit codes: 0 every document converted or passed through; 1 some document was left out; \
2 usage, I/O or YAML syntax error (nothing written).";

#[derive(Parser)]
struct ConvertArgs {
    /// Files, or folders to search for *.yaml and *.yml files (recursively); none or `-`:
    /// standard input.
    paths: Vec<std::path::PathBuf>,
    /// Write the converted documents to this file instead of standard output.
    #[arg(short, long, value_name = "FILE", conflicts_with = "check")]
    output: Option<std::path::PathBuf>,
    /// Write nothing: only report, and exit 1 when some document would not convert (for CI).
    #[arg(long)]
    check: bool,
}

#[derive(Parser)]
struct RunArgs {
    /// Watch only this namespace. ClusterSecretStores are then not used (namespaced RBAC only).
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
    /// How long a value of a moving selector (AWSCURRENT, the latest parameter, a label) that the
    /// rotation watcher follows keeps being shared after its version was last confirmed (by its
    /// read, a rotation check or an event): one read per value for a whole sync wave. A move
    /// the watcher sees drops it at once. 0: only --read-sharing.
    #[arg(long, env = "ARNSYNC_TRACKED_READ_SHARING", default_value = "15m", value_parser = duration)]
    tracked_read_sharing: Duration,
    /// Value reads arriving within this window are sent together: AWSCURRENT reads as
    /// BatchGetSecretValue (20 a call), parameter reads as GetParameters (10 a call). 0: one
    /// call per value.
    #[arg(long, env = "ARNSYNC_READ_BATCH_WINDOW", default_value = "50ms", value_parser = duration)]
    read_batch_window: Duration,
    /// AWS calls per second per account (or identity) and region, per quota, as
    /// QUOTA=RATE,...: ssm (GetParameter, GetParameters, GetParametersByPath; default 20),
    /// secretsmanager (GetSecretValue, DescribeSecret; 500), secretsmanager-batch
    /// (BatchGetSecretValue; 50), secretsmanager-list (ListSecrets; 50), sts
    /// (GetCallerIdentity; 20). Quotas not named keep their default; 0 = unpaced. Calls wait for
    /// their turn rather than fail.
    #[arg(long, env = "ARNSYNC_AWS_RATE", default_value = "", value_parser = rates)]
    aws_rate: Rates,
    /// While a store's primary region is unavailable (provider.aws.failoverRegions), how long
    /// its Secrets Manager reads stay in a replica region before the primary is tried again;
    /// the wait doubles after each failed try, up to 5 minutes (or this, when longer).
    #[arg(long, env = "ARNSYNC_FAILOVER_RETRY", default_value = "30s", value_parser = duration)]
    failover_retry: Duration,
    /// Timeout of one AWS call attempt.
    #[arg(long, env = "ARNSYNC_AWS_TIMEOUT", default_value = "10s", value_parser = duration)]
    aws_timeout: Duration,
    /// How often to check AWS for rotations (AWSCURRENT moves, new parameter versions), for
    /// stores without spec.arnsync.rotationCheckInterval.
    #[arg(long, env = "ARNSYNC_ROTATION_CHECK_INTERVAL", default_value = "60s", value_parser = duration)]
    rotation_check_interval: Duration,
    /// With a healthy event queue (a store's spec.arnsync.eventQueue), how often AWS is still
    /// polled for rotations, as a safety net for lost events.
    #[arg(long, env = "ARNSYNC_EVENT_SAFETY_INTERVAL", default_value = "10m", value_parser = duration)]
    event_safety_interval: Duration,
    /// Secret changes of one workload within this window roll it once.
    #[arg(long, env = "ARNSYNC_RESTART_DEBOUNCE", default_value = "5s", value_parser = duration)]
    restart_debounce: Duration,
    /// SERVICE=DOLLARS,...: price per 10,000 calls for the cost estimate
    /// (arnsync_aws_estimated_monthly_cost_dollars, store status): secretsmanager (default
    /// 0.05), ssm (0: standard throughput is free), sts (0), sqs (0.004, i.e. $0.40 per million).
    /// Services not named keep their default.
    #[arg(long, env = "ARNSYNC_AWS_PRICES", default_value = "", value_parser = prices)]
    aws_prices: Prices,
    /// Parameter Store runs at higher throughput: its calls cost $0.05 per 10,000 (unless
    /// --aws-prices gives ssm a price).
    #[arg(long, env = "ARNSYNC_SSM_HIGHER_THROUGHPUT")]
    ssm_higher_throughput: bool,
    /// How often the estimated monthly cost in store status may change.
    #[arg(long, env = "ARNSYNC_COST_STATUS_INTERVAL", default_value = "5m", value_parser = duration)]
    cost_status_interval: Duration,
    /// Attempts per AWS call (retries use exponential backoff with jitter).
    #[arg(long, env = "ARNSYNC_AWS_MAX_ATTEMPTS", default_value_t = 3)]
    aws_max_attempts: u32,
    /// Act only while holding a coordination.k8s.io/v1 Lease, so that of several replicas one
    /// reconciles and the others stand by. The identity written to the Lease is $POD_NAME, else
    /// the hostname with a random suffix.
    #[arg(long, env = "ARNSYNC_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "ARNSYNC_LEADER_ELECTION_ID", default_value = "arnsync")]
    leader_election_id: String,
    /// How long a leader's claim lasts without renewal. The leader renews every third of it and
    /// stops (exits) when it could not renew for two thirds; standbys retry every third.
    #[arg(long, env = "ARNSYNC_LEASE_DURATION", default_value = "15s", value_parser = lease_duration)]
    lease_duration: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    arnsync::api::parse_duration(s).map_err(|e| e.to_string())
}

fn rates(s: &str) -> Result<Rates, String> {
    s.parse()
}

fn prices(s: &str) -> Result<Prices, String> {
    s.parse()
}

fn lease_duration(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s (leaseDurationSeconds is whole seconds)".into());
    }
    Ok(d)
}

/// mimalloc rather than the C library's allocator: see `arnsync::memory`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", arnsync::api::crds_yaml());
            Ok(())
        }
        Command::Convert(args) => {
            let options = arnsync::convert::Options {
                paths: args.paths,
                output: args.output,
                check: args.check,
            };
            let code = arnsync::convert::run(
                &options,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            std::process::exit(code.into());
        }
        Command::IamPolicy(args) => {
            let options = arnsync::iam::Options {
                paths: args.paths,
                account: args.account,
                identity: args.identity,
                check: args.check,
                resolve_kms: args.resolve_kms,
            };
            let code = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(arnsync::iam::run(
                    &options,
                    &mut std::io::stdout().lock(),
                    &mut std::io::stderr().lock(),
                ));
            std::process::exit(code.into());
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(*args)),
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
    let mut prices = args.aws_prices;
    if args.ssm_higher_throughput && prices.per_10k("ssm") == 0.0 {
        prices = prices.with("ssm", 0.05);
    }
    let sources = Sources::with_tokens(
        metrics.clone(),
        SourceOptions {
            cache_ttl: args.read_sharing,
            tracked_ttl: args.tracked_read_sharing,
            read_batch_window: args.read_batch_window,
            rates: args.aws_rate,
            timeout: args.aws_timeout,
            max_attempts: args.aws_max_attempts.max(1),
            failover_retry: args.failover_retry,
            prices,
            ..SourceOptions::default()
        },
        Arc::new(KubeTokens::new(client.clone())),
    );
    let options = Options {
        namespace: args.namespace.clone(),
        rotation_check_interval: args.rotation_check_interval,
        event_safety_interval: args.event_safety_interval,
        restart_debounce: args.restart_debounce,
        cost_status_interval: args.cost_status_interval,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        sources,
        metrics.clone(),
        options,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || until(stop_rx.clone());
    let readiness = Readiness::default();
    let bound = server::serve(
        args.metrics_addr,
        ServerState {
            registry: Arc::new(registry),
            readiness: readiness.clone(),
        },
        stopped(),
    )
    .await?;
    let identity = args.leader_election.then(leader::identity);
    tracing::info!(
        addr = %bound,
        namespace = ?args.namespace,
        leader_election = args.leader_election,
        identity = identity.as_deref().unwrap_or_default(),
        "arnsync started; serving /metrics, /healthz, /readyz"
    );
    {
        let readiness = readiness.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            readiness.set(Phase::Stopping);
            let _ = stop_tx.send(true);
        });
    }

    let Some(identity) = identity else {
        metrics.leader.set(1);
        let stop = stopped();
        tokio::select! {
            _ = run_controllers(ctx, readiness, stopped()) => {}
            _ = async { stop.await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
                tracing::warn!(timeout = ?DRAIN_TIMEOUT, "controllers did not stop in time");
            }
        }
        return Ok(());
    };
    let mut elector = Elector::new(
        client,
        leader::Config {
            namespace: args.leader_election_namespace,
            name: args.leader_election_id,
            identity,
            lease_duration: args.lease_duration,
        },
    );
    metrics.leader.set(0);
    let standing_by = |_: &str| {
        if readiness.get() == Phase::Starting {
            readiness.set(Phase::Standby);
        }
    };
    if !elector.acquire(standing_by, stopped()).await {
        return Ok(());
    }
    lead(elector, ctx, readiness, stopped()).await
}

/// Runs the controllers while renewing the Lease. On shutdown: stop the controllers (still
/// renewing), then release the Lease. On a lost Lease: stop the controllers and fail, so that
/// Kubernetes restarts this replica as a standby with fresh state.
async fn lead(
    mut elector: Elector,
    ctx: Arc<Context>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = ctx.metrics.clone();
    metrics.leader.set(1);
    if readiness.get() != Phase::Stopping {
        readiness.set(Phase::Starting);
    }
    let (halt_tx, halt_rx) = watch::channel(false);
    let mut controllers = tokio::spawn(run_controllers(ctx, readiness.clone(), until(halt_rx)));
    let mut asked_to_stop = false;
    let drain = async {
        tokio::select! {
            _ = shutdown => asked_to_stop = true,
            _ = &mut controllers => return,
        }
        let _ = halt_tx.send(true);
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut controllers)
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "controllers did not stop in time");
        }
    };
    let held = elector.hold(drain).await;
    metrics.leader.set(0);
    match held {
        Ok(()) => {
            elector.release().await;
            if !asked_to_stop {
                anyhow::bail!("the controllers stopped without a shutdown signal");
            }
            Ok(())
        }
        Err(lost) => {
            readiness.set(Phase::Stopping);
            tracing::error!(error = %lost, "lost leadership; stopping the controllers and exiting");
            let _ = halt_tx.send(true);
            // The standby may take over one third of a lease duration from now: stop by then.
            let grace = elector.config().lease_duration - elector.config().renew_deadline();
            if tokio::time::timeout(grace, &mut controllers).await.is_err() {
                controllers.abort();
            }
            anyhow::bail!("lost leadership: {lost}")
        }
    }
}

/// Runs every controller until `shutdown`; the phase turns Ready once the caches synced.
async fn run_controllers(
    ctx: Arc<Context>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (ready_tx, mut ready_rx) = watch::channel(false);
    let synced = tokio::spawn(async move {
        if ready_rx.wait_for(|r| *r).await.is_ok() && readiness.get() == Phase::Starting {
            readiness.set(Phase::Ready);
        }
    });
    controller::run(ctx, ready_tx, shutdown).await;
    synced.abort();
}

/// Resolves once `rx` turns true (or its sender is gone).
async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
