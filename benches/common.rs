//! What the benchmarks share: their settings from the environment and how they print counts.

/// A setting from the environment, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// AWS calls by (service, operation), one per line.
pub fn print_counts(title: &str, counts: &std::collections::BTreeMap<(String, String), u64>) {
    println!("  {title}:");
    if counts.is_empty() {
        println!("    none");
    }
    for ((service, op), n) in counts {
        println!("    {service:>15} {op:<22} {n}");
    }
}
