//! `arnsync iam-policy`: the least-privilege IAM policy of every AWS principal the stores of a
//! cluster (or of manifest files) read with, from what their ExternalSecrets name, and a check
//! of a written policy against it.
//!
//! Pure: [`plan`] turns stores and ExternalSecrets into [`Principal`]s with their needs; the
//! command line ([`cli`]) reads the objects and writes the JSON. The AWS calls granted are the
//! ones the source layer makes (`src/source/aws`, `src/source/events`): nothing more.

pub mod check;
mod cli;
mod kms;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::{
    is_arn, service_of, AwsSettings, ExternalSecretSpec, FindRef, RefreshPolicy, RemoteRef,
    Service, StoreKind,
};
use crate::source::key::base_name;

pub use cli::{run, Options, EXIT_ERROR, EXIT_EXCESS, EXIT_MISSING, EXIT_OK};

/// A store as `iam-policy` needs it.
#[derive(Clone, Debug)]
pub struct Store {
    pub kind: StoreKind,
    /// `None`: a ClusterSecretStore, or a SecretStore manifest without a namespace.
    pub namespace: Option<String>,
    pub name: String,
    pub settings: AwsSettings,
}

impl Store {
    /// `SecretStore ns/name`, `ClusterSecretStore name`.
    pub fn label(&self) -> String {
        match (self.kind, &self.namespace) {
            (StoreKind::SecretStore, Some(ns)) => format!("SecretStore {ns}/{}", self.name),
            (StoreKind::SecretStore, None) => format!("SecretStore {}", self.name),
            (StoreKind::ClusterSecretStore, _) => format!("ClusterSecretStore {}", self.name),
        }
    }
}

/// An ExternalSecret (or the ExternalSecret a ClusterExternalSecret writes).
#[derive(Clone, Debug)]
pub struct Reader {
    /// `ExternalSecret ns/name`, `ClusterExternalSecret name`.
    pub label: String,
    /// `None`: a manifest without a namespace, or a ClusterExternalSecret (any namespace).
    pub namespace: Option<String>,
    pub spec: ExternalSecretSpec,
}

/// What the objects say, plus the ServiceAccounts known (their role annotation).
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub stores: Vec<Store>,
    pub readers: Vec<Reader>,
    /// `(namespace, name)` → the `eks.amazonaws.com/role-arn` annotation, if any.
    pub service_accounts: BTreeMap<(String, String), Option<String>>,
}

/// Why a statement is there; also its `Sid`, and the order of statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Purpose {
    /// GetSecretValue (reads), DescribeSecret (rotation checks, event confirmations).
    ReadSecrets,
    /// The version watcher and `dataFrom.find` list secrets (no resource scoping possible).
    ListSecrets,
    /// `dataFrom.find` and batched AWSCURRENT reads (no resource scoping possible).
    BatchReadSecrets,
    /// GetParameter (single reads), GetParameters (batched reads, version checks).
    ReadParameters,
    /// `dataFrom.find` in Parameter Store.
    FindParametersByPath,
    /// Customer-managed keys of secrets, through Secrets Manager only.
    DecryptSecrets,
    /// Customer-managed keys of SecureString parameters, through Parameter Store only.
    DecryptParameters,
    /// The next role of a store's role chain.
    AssumeRole,
    /// A store's `spec.arnsync.eventQueue`.
    EventQueue,
}

impl Purpose {
    pub fn sid(self) -> &'static str {
        match self {
            Purpose::ReadSecrets => "ReadSecrets",
            Purpose::ListSecrets => "ListSecrets",
            Purpose::BatchReadSecrets => "BatchReadSecrets",
            Purpose::ReadParameters => "ReadParameters",
            Purpose::FindParametersByPath => "FindParametersByPath",
            Purpose::DecryptSecrets => "DecryptSecrets",
            Purpose::DecryptParameters => "DecryptParameters",
            Purpose::AssumeRole => "AssumeRole",
            Purpose::EventQueue => "EventQueue",
        }
    }
}

/// What one statement grants, before it is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub actions: BTreeSet<String>,
    pub resources: BTreeSet<String>,
    /// `kms:ViaService` values (Decrypt statements only).
    pub via_services: BTreeSet<String>,
}

/// A value or parameter read, kept to look up its KMS key (`--resolve-kms`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Encrypted {
    pub service: Service,
    pub region: String,
    /// The key as the ExternalSecret names it (prefix applied), or the path of a find.
    pub key: String,
    /// True for a find: every value under `key` (a path or name prefix).
    pub found: bool,
}

/// One AWS principal: who holds the policy, the stores that use it, and what it needs.
#[derive(Clone, Debug, Default)]
pub struct Principal {
    /// `operator`, a role ARN, `serviceaccount:NS/NAME` or `secret:NS/NAME`.
    pub id: String,
    pub stores: BTreeSet<String>,
    pub grants: BTreeMap<Purpose, Grant>,
    /// What it reads, per store settings, for the KMS lookup.
    pub reads: BTreeMap<String, (AwsSettings, BTreeSet<Encrypted>)>,
}

impl Principal {
    fn grant(&mut self, purpose: Purpose, actions: &[&str], resource: String) {
        let g = self.grants.entry(purpose).or_default();
        g.actions.extend(actions.iter().map(|a| a.to_string()));
        g.resources.insert(resource);
    }

    /// Adds `kms:Decrypt` on `key_arn` for values of `service` in `region`.
    pub fn decrypt(&mut self, service: Service, region: &str, key_arn: &str) {
        let (purpose, host) = match service {
            Service::SecretsManager => (Purpose::DecryptSecrets, "secretsmanager"),
            Service::ParameterStore => (Purpose::DecryptParameters, "ssm"),
        };
        self.grant(purpose, &["kms:Decrypt"], key_arn.to_string());
        let g = self.grants.get_mut(&purpose).expect("just granted");
        g.via_services
            .insert(format!("{host}.{region}.{}", dns_suffix(region)));
    }

    /// The IAM policy document.
    pub fn policy(&self) -> Policy {
        Policy {
            version: "2012-10-17",
            statement: self
                .grants
                .iter()
                .map(|(purpose, g)| Statement {
                    sid: purpose.sid(),
                    effect: "Allow",
                    action: OneOrMany::of(&g.actions),
                    resource: OneOrMany::of(&g.resources),
                    condition: (!g.via_services.is_empty()).then(|| {
                        BTreeMap::from([(
                            "StringEquals",
                            BTreeMap::from([("kms:ViaService", OneOrMany::of(&g.via_services))]),
                        )])
                    }),
                })
                .collect(),
        }
    }
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    pub action: OneOrMany,
    pub resource: OneOrMany,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<&'static str, BTreeMap<&'static str, OneOrMany>>>,
}

/// A single string when there is one, an array otherwise (IAM takes both).
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(one) => vec![one.as_str()],
            OneOrMany::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }

    fn of(items: &BTreeSet<String>) -> OneOrMany {
        match items.len() {
            1 => OneOrMany::One(items.iter().next().expect("one item").clone()),
            _ => OneOrMany::Many(items.iter().cloned().collect()),
        }
    }
}

/// `aws`, `aws-cn` or `aws-us-gov`, from the region's name.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`).
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The principals of `inputs`, sorted by id; `account` fills the account of ARNs built from
/// names (else the account of the store's last role, else `*`). Also one line for each
/// ExternalSecret whose store is not among the inputs.
pub fn plan(inputs: &Inputs, account: Option<&str>) -> (Vec<Principal>, Vec<String>) {
    let mut principals: BTreeMap<String, Principal> = BTreeMap::new();
    let mut unused = Vec::new();
    let mut store_readers: Vec<Vec<&Reader>> = vec![Vec::new(); inputs.stores.len()];
    for r in &inputs.readers {
        let matches: Vec<usize> = (0..inputs.stores.len())
            .filter(|i| uses(r, &inputs.stores[*i]))
            .collect();
        if matches.is_empty() {
            unused.push(format!(
                "{}: its {:?} {} is not among the objects read; its reads are left out",
                r.label, r.spec.secret_store_ref.kind, r.spec.secret_store_ref.name
            ));
        }
        for i in matches {
            store_readers[i].push(r);
        }
    }
    for (store, readers) in inputs.stores.iter().zip(store_readers) {
        let s = &store.settings;
        let chain = chain(store, &inputs.service_accounts);
        // Each principal of the chain may assume the next role.
        for pair in chain.windows(2) {
            let (from, role) = (&pair[0], &pair[1]);
            let p = principal(&mut principals, &from.0, store);
            let mut actions = vec!["sts:AssumeRole"];
            if role.1 {
                actions.push("sts:TagSession");
            }
            p.grant(Purpose::AssumeRole, &actions, role.0.clone());
        }
        let reader_id = &chain.last().expect("a chain has a start").0;
        let account = account
            .map(str::to_string)
            .or_else(|| {
                s.roles
                    .last()
                    .and_then(|r| account_of(&r.arn))
                    .map(String::from)
            })
            .unwrap_or_else(|| "*".into());
        let p = principal(&mut principals, reader_id, store);
        let needs = Needs {
            region: &s.region,
            partition: partition(&s.region),
            account: &account,
            failover: &s.failover_regions,
        };
        let mut reads = BTreeSet::new();
        let mut current = BTreeSet::new();
        for r in readers {
            needs.reader(p, s, r, &mut reads, &mut current);
        }
        // Reads at AWSCURRENT of two or more secrets go together as BatchGetSecretValue.
        if current.len() >= 2 {
            p.grant(
                Purpose::BatchReadSecrets,
                &["secretsmanager:BatchGetSecretValue"],
                "*".into(),
            );
        }
        if let Some(queue) = &s.event_queue {
            needs.queue(p, queue);
        }
        if !reads.is_empty() {
            let entry = p
                .reads
                .entry(store.label())
                .or_insert_with(|| (s.clone(), BTreeSet::new()));
            entry.1.extend(reads);
        }
    }
    (principals.into_values().collect(), unused)
}

fn principal<'a>(
    principals: &'a mut BTreeMap<String, Principal>,
    id: &str,
    store: &Store,
) -> &'a mut Principal {
    let p = principals
        .entry(id.to_string())
        .or_insert_with(|| Principal {
            id: id.to_string(),
            ..Principal::default()
        });
    p.stores.insert(store.label());
    p
}

/// True when `r` names `store` (same namespace, where both say one).
fn uses(r: &Reader, store: &Store) -> bool {
    let rf = &r.spec.secret_store_ref;
    rf.kind == store.kind
        && rf.name == store.name
        && (store.kind == StoreKind::ClusterSecretStore
            || r.namespace.is_none()
            || store.namespace.is_none()
            || r.namespace == store.namespace)
}

/// The principals of a store, in order: the base credentials, then each role assumed (with
/// whether it is assumed with session tags). The last one reads.
fn chain(
    store: &Store,
    service_accounts: &BTreeMap<(String, String), Option<String>>,
) -> Vec<(String, bool)> {
    let s = &store.settings;
    let mut roles: Vec<(String, bool)> = s
        .roles
        .iter()
        .map(|r| (r.arn.clone(), !r.session_tags.is_empty()))
        .collect();
    let ns = |explicit: &Option<String>| {
        explicit
            .clone()
            .or_else(|| store.namespace.clone())
            .unwrap_or_default()
    };
    let base = if let Some(sa) = &s.jwt {
        let key = (ns(&sa.namespace), sa.name.clone());
        match service_accounts.get(&key) {
            Some(Some(annotated)) => annotated.clone(),
            // Without the annotation the token is exchanged for the store's only role.
            Some(None) if roles.len() == 1 => roles.remove(0).0,
            _ => format!("serviceaccount:{}", qualified(&key.0, &key.1)),
        }
    } else if let Some(keys) = &s.auth {
        let r = &keys.access_key_id_secret_ref;
        format!("secret:{}", qualified(&ns(&r.namespace), &r.name))
    } else {
        "operator".to_string()
    };
    let mut chain = vec![(base, false)];
    chain.extend(roles);
    chain
}

/// `ns/name`, or `name` for a manifest that names no namespace.
fn qualified(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// Where the ARNs of one store point.
struct Needs<'a> {
    region: &'a str,
    partition: &'a str,
    account: &'a str,
    /// `failoverRegions`: Secrets Manager reads and version checks may go there too.
    failover: &'a [String],
}

impl Needs<'_> {
    /// Grants `actions` on the secret ARN `arn` (in the store's region) and on the same secret
    /// in each failover region.
    fn grant_secret(&self, p: &mut Principal, purpose: Purpose, actions: &[&str], arn: String) {
        let marker = format!(":secretsmanager:{}:", self.region);
        for region in self.failover {
            let replica = arn.replacen(&marker, &format!(":secretsmanager:{region}:"), 1);
            p.grant(purpose, actions, replica);
        }
        p.grant(purpose, actions, arn);
    }

    fn secret_arn(&self, name: &str) -> String {
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{name}",
            self.partition, self.region, self.account
        )
    }

    fn parameter_arn(&self, name: &str) -> String {
        let slash = if name.starts_with('/') { "" } else { "/" };
        format!(
            "arn:{}:ssm:{}:{}:parameter{slash}{name}",
            self.partition, self.region, self.account
        )
    }

    fn reader(
        &self,
        p: &mut Principal,
        s: &AwsSettings,
        r: &Reader,
        reads: &mut BTreeSet<Encrypted>,
        current: &mut BTreeSet<String>,
    ) {
        let watched = r.spec.refresh_policy.unwrap_or_default() == RefreshPolicy::Periodic;
        for rf in refs_of(&r.spec) {
            self.remote(p, s, rf, reads, current);
        }
        for f in r.spec.data_from.iter().filter_map(|d| d.find.as_ref()) {
            self.find(p, s, f, watched, reads);
        }
        let watched_secret = watched
            && refs_of(&r.spec).any(|rf| {
                service_of(Some(s.service), &rf.key) == Service::SecretsManager
                    && !rf
                        .version
                        .as_deref()
                        .is_some_and(|v| v.starts_with("uuid/"))
            });
        if watched_secret {
            p.grant(
                Purpose::ListSecrets,
                &["secretsmanager:ListSecrets"],
                "*".into(),
            );
        }
    }

    fn remote(
        &self,
        p: &mut Principal,
        s: &AwsSettings,
        rf: &RemoteRef,
        reads: &mut BTreeSet<Encrypted>,
        current: &mut BTreeSet<String>,
    ) {
        let key = match s.prefix.as_deref().filter(|_| !is_arn(&rf.key)) {
            Some(prefix) => format!("{prefix}{}", rf.key),
            None => rf.key.clone(),
        };
        let service = service_of(Some(s.service), &key);
        match service {
            Service::SecretsManager => {
                let arn = if is_arn(&key) {
                    key.clone()
                } else {
                    self.secret_arn(&format!("{key}-??????"))
                };
                self.grant_secret(
                    p,
                    Purpose::ReadSecrets,
                    &[
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:DescribeSecret",
                    ],
                    arn,
                );
                if rf.version.as_deref().unwrap_or("AWSCURRENT") == "AWSCURRENT" {
                    current.insert(key.clone());
                }
            }
            Service::ParameterStore => {
                let name = base_name(&key).to_string();
                let arn = if is_arn(&name) {
                    name.clone()
                } else {
                    self.parameter_arn(&name)
                };
                p.grant(
                    Purpose::ReadParameters,
                    &["ssm:GetParameter", "ssm:GetParameters"],
                    arn,
                );
            }
        }
        reads.insert(Encrypted {
            service,
            region: self.region.to_string(),
            key,
            found: false,
        });
    }

    fn find(
        &self,
        p: &mut Principal,
        s: &AwsSettings,
        f: &FindRef,
        watched: bool,
        reads: &mut BTreeSet<Encrypted>,
    ) {
        match s.service {
            Service::SecretsManager => {
                let prefix = secret_prefix(f);
                p.grant(
                    Purpose::ListSecrets,
                    &["secretsmanager:ListSecrets"],
                    "*".into(),
                );
                p.grant(
                    Purpose::BatchReadSecrets,
                    &["secretsmanager:BatchGetSecretValue"],
                    "*".into(),
                );
                // BatchGetSecretValue needs GetSecretValue on each secret found; the watcher
                // describes them.
                self.grant_secret(
                    p,
                    Purpose::ReadSecrets,
                    &[
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:DescribeSecret",
                    ],
                    self.secret_arn(&format!("{prefix}*")),
                );
                reads.insert(Encrypted {
                    service: Service::SecretsManager,
                    region: self.region.to_string(),
                    key: prefix,
                    found: true,
                });
            }
            Service::ParameterStore => {
                let path = f.path.as_deref().unwrap_or("/");
                let path = match path.trim_end_matches('/') {
                    "" => "/",
                    trimmed => trimmed,
                };
                let below = if path == "/" {
                    self.parameter_arn("/*")
                } else {
                    self.parameter_arn(&format!("{path}/*"))
                };
                let path_arn = self.parameter_arn(path);
                p.grant(
                    Purpose::FindParametersByPath,
                    &["ssm:GetParametersByPath"],
                    path_arn,
                );
                p.grant(
                    Purpose::FindParametersByPath,
                    &["ssm:GetParametersByPath"],
                    below.clone(),
                );
                // The watcher checks the versions of the parameters found with GetParameters.
                if watched {
                    p.grant(Purpose::ReadParameters, &["ssm:GetParameters"], below);
                }
                reads.insert(Encrypted {
                    service: Service::ParameterStore,
                    region: self.region.to_string(),
                    key: path.to_string(),
                    found: true,
                });
            }
        }
    }

    /// `sqs:ReceiveMessage` and `sqs:DeleteMessage` (DeleteMessageBatch) on the queue, and
    /// `sqs:GetQueueUrl` when the store names it by ARN.
    fn queue(&self, p: &mut Principal, queue: &str) {
        let queue = queue.trim();
        let (arn, by_arn) = if is_arn(queue) {
            (queue.to_string(), true)
        } else {
            (self.queue_arn(queue), false)
        };
        let mut actions = vec!["sqs:ReceiveMessage", "sqs:DeleteMessage"];
        if by_arn {
            actions.push("sqs:GetQueueUrl");
        }
        p.grant(Purpose::EventQueue, &actions, arn);
    }

    /// `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` → `arn:PARTITION:sqs:REGION:ACCOUNT:NAME`
    /// (a local endpoint's URL: the store's region).
    fn queue_arn(&self, url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let mut parts = rest.split('/');
        let host = parts.next().unwrap_or_default();
        let account = parts.next().unwrap_or("*");
        let name = parts.next().unwrap_or("*");
        let region = host
            .strip_prefix("sqs.")
            .and_then(|h| h.split('.').next())
            .filter(|r| r.contains('-'))
            .unwrap_or(self.region);
        format!("arn:{}:sqs:{region}:{account}:{name}", partition(region))
    }
}

fn refs_of(spec: &ExternalSecretSpec) -> impl Iterator<Item = &RemoteRef> {
    spec.data
        .iter()
        .map(|d| &d.remote_ref)
        .chain(spec.data_from.iter().filter_map(|d| d.extract.as_ref()))
}

/// The name prefix every secret a Secrets Manager find returns starts with: its `path`, or
/// the literal start of an anchored `name.regexp` (the longer when one extends the other).
fn secret_prefix(f: &FindRef) -> String {
    let path = f.path.clone().unwrap_or_default();
    let from_regexp = f
        .name
        .as_ref()
        .map(|n| literal_prefix(&n.regexp))
        .unwrap_or_default();
    if from_regexp.starts_with(&path) {
        from_regexp
    } else {
        path
    }
}

/// The literal text an anchored regular expression's matches start with (`^prod/db-.*` →
/// `prod/db-`); empty when it is not anchored.
fn literal_prefix(re: &str) -> String {
    let Some(rest) = re.strip_prefix('^') else {
        return String::new();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let literal = c.is_ascii_alphanumeric() || "/_+=@-".contains(c);
        let escaped_dot = c == '\\' && chars.peek() == Some(&'.');
        if !literal && !escaped_dot {
            break;
        }
        let c = if escaped_dot {
            chars.next().expect("peeked")
        } else {
            c
        };
        // A quantifier makes the character before it optional.
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        out.push(c);
    }
    out
}
