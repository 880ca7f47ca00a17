use clap::{Parser, Subcommand};

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
    /// Print the CustomResourceDefinitions as YAML (for kubectl apply or the Helm chart).
    Crds,
}

fn main() {
    match Cli::parse().command {
        Command::Crds => print!("{}", arnsync::api::crds_yaml()),
    }
}
