//! What each ESO document meets when applied with only `apiVersion` changed, decided by
//! reading it against our CRDs.

#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Accepted,
    /// Refused; the server's message contains every one of these (the field, named).
    Refused(&'static [&'static str]),
    /// A kind arnsync does not serve (PushSecret): 404.
    UnknownKind,
}

use Outcome::*;

pub struct Row {
    /// The file's number (its name's prefix).
    pub file: &'static str,
    pub index: usize,
    pub kind: &'static str,
    pub name: &'static str,
    pub outcome: Outcome,
}

const fn row(
    file: &'static str,
    index: usize,
    kind: &'static str,
    name: &'static str,
    outcome: Outcome,
) -> Row {
    Row {
        file,
        index,
        kind,
        name,
        outcome,
    }
}

/// ESO's templates may leave out `spec.secretStoreRef` (every entry then names its source);
/// arnsync reads from one store, so the field is required.
const NO_STORE: Outcome = Refused(&["spec.secretStoreRef: Required value"]);

pub const ROWS: &[Row] = &[
    row("001", 0, "SecretStore", "aws-secretsmanager", Accepted),
    row("002", 0, "SecretStore", "parameterstore", Accepted),
    row("003", 0, "SecretStore", "aws-secretsmanager", Accepted),
    // role: team-b (a short name, not an ARN) is a string to us, as to ESO.
    row("004", 0, "SecretStore", "team-b-store", Accepted),
    row("004", 1, "SecretStore", "team-b-store", Accepted),
    row("004", 2, "SecretStore", "team-b-store", Accepted),
    // ESO's session tag policy (sessionTagsPolicy: Custom, customSessionTags) has no
    // counterpart here: a rule refuses the fields by name.
    row(
        "004",
        3,
        "SecretStore",
        "team-b-store",
        Refused(&["provider.aws.sessionTagsPolicy and customSessionTags are not supported"]),
    ),
    row("004", 4, "SecretStore", "team-b-store", Accepted),
    row("004", 5, "SecretStore", "team-b-store", Accepted),
    // metadataPolicy: Fetch (tags instead of the value) is refused by a rule, naming the entries.
    row(
        "005",
        0,
        "ExternalSecret",
        "example",
        Refused(&["spec.data[2]", "metadataPolicy Fetch"]),
    ),
    row("006", 0, "PushSecret", "pushsecret-example", UnknownKind),
    row("006", 1, "ExternalSecret", "versioned-api-key", Accepted),
    row("006", 2, "ExternalSecret", "versioned-api-key", Accepted),
    row("007", 0, "ExternalSecret", "github-ssh-access", Accepted),
    row(
        "008",
        0,
        "ExternalSecret",
        "anchore-access-credentials",
        Accepted,
    ),
    row("009", 0, "ExternalSecret", "find-by-tags", Accepted),
    row("010", 0, "ExternalSecret", "find-by-tags", Accepted),
    row("011", 0, "ExternalSecret", "example", Accepted),
    row("012", 0, "ExternalSecret", "template", NO_STORE),
    row("013", 0, "ExternalSecret", "my-template-example", NO_STORE),
    row("014", 0, "ExternalSecret", "my-template-example", NO_STORE),
    // Also dataFrom[0].sourceRef.generatorRef, reported once secretStoreRef is there (schema
    // errors come before rules).
    row("015", 0, "ExternalSecret", "ecr-secret", NO_STORE),
    row("016", 0, "PushSecret", "pushsecret-example", UnknownKind),
    row(
        "017",
        0,
        "ClusterSecretStore",
        "aws-secretsmanager",
        Accepted,
    ),
    row("018", 0, "ExternalSecret", "github-app-org", Accepted),
    // region: $AWS_REGION (for envsubst) is a non-empty string.
    row(
        "022",
        0,
        "ClusterSecretStore",
        "cluster-secret-store",
        Accepted,
    ),
    row("024", 0, "ClusterSecretStore", "parameterstore", Accepted),
    row("025", 0, "ExternalSecret", "alertmanager-config", Accepted),
    row("028", 0, "SecretStore", "aws-secrets-manager", Accepted),
    row("028", 1, "ExternalSecret", "sealed-secrets", Accepted),
    row(
        "029",
        0,
        "ExternalSecret",
        "addons-test-staging-secret",
        Accepted,
    ),
    row(
        "029",
        1,
        "ExternalSecret",
        "addons-test-cfn-stack-staging-secret",
        Accepted,
    ),
    row(
        "029",
        2,
        "ExternalSecret",
        "addons-test-staging-cdo-fan-in-secret",
        Accepted,
    ),
    row(
        "029",
        3,
        "ClusterExternalSecret",
        "addons-test-adhoc-secret",
        Accepted,
    ),
    // A template to edit (`# XXX: Edit`): namespace NAMESPACE does not exist (nor can it: object
    // names are lowercase), and neither can name NAME.
    row(
        "031",
        0,
        "ExternalSecret",
        "NAME",
        Refused(&["namespaces \"NAMESPACE\" not found"]),
    ),
    row("035", 0, "SecretStore", "aws-secrets-manager", Accepted),
    row("035", 1, "ExternalSecret", "cloudmart-db-secret", Accepted),
    row(
        "038",
        0,
        "ExternalSecret",
        "s1-docker-registry-secret",
        Accepted,
    ),
    row("038", 1, "ExternalSecret", "s1-site-key", Accepted),
    // ESO's reference example: its template annotation `acme.org/sha: 1234` is a number, which
    // a string map refuses first; rules then refuse syncWindows and
    // template.metadata.finalizers by name (tests/crd_validation.rs); it also repeats dataFrom
    // (below).
    row(
        "046",
        0,
        "ExternalSecret",
        "hello-world",
        Refused(&["acme.org/sha"]),
    ),
];

/// Documents whose YAML repeats a key: (file, index, key). kubectl keeps the last value, so
/// the apply sees only that one; a real API server refuses the repetition only in a raw YAML
/// apply body under Strict, and only once the apply itself passed.
pub const DUPLICATE_KEYS: &[(&str, usize, &str)] = &[("046", 0, "dataFrom")];
