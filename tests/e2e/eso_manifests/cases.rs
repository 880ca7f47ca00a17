//! For each ESO ExternalSecret the API accepts: the store's service and region, what moto must
//! hold, and the Secret External Secrets Operator would write from it. The service is the
//! store's: from the store document when the files have one, else from what the keys are.
//! Regions are the store documents' (moto keeps regions apart), else us-east-1.

use serde_json::Value;

pub enum Seed {
    /// A Secrets Manager secret; the same name again adds a version (the new AWSCURRENT).
    Secret(&'static str, &'static str),
    /// A secret with tags.
    Tagged(
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    ),
    /// A secret whose first version has this VersionId: (name, VersionId, value).
    Version(&'static str, &'static str, &'static str),
    /// A parameter: (name, value, type).
    Param(&'static str, &'static str, &'static str),
}

use Seed::*;

/// Computes (key, value) pairs from the document.
pub type Rendered = fn(&Value) -> Vec<(String, String)>;

pub struct Case {
    pub file: &'static str,
    pub index: usize,
    pub service: &'static str,
    pub region: &'static str,
    pub seeds: &'static [Seed],
    /// Exactly the Secret's keys.
    pub keys: &'static [&'static str],
    pub values: &'static [(&'static str, &'static str)],
    /// Values computed from the document: a long template rendered as ESO would.
    pub rendered: Option<Rendered>,
    pub type_: Option<&'static str>,
    pub labels: &'static [(&'static str, &'static str)],
    pub annotations: &'static [(&'static str, &'static str)],
    /// A Secret that exists before (creationPolicy Merge), in the target's name.
    pub existing: &'static [(&'static str, &'static str)],
    /// What the user edits first, for a template the document asks to edit.
    pub edit: Option<fn(&mut Value)>,
    /// An ESO feature arnsync refuses today: instead of ESO's Secret, Ready must be False
    /// with a message that names this. (ESO's Secret stays described above for when it lands.)
    pub gap: Option<&'static str>,
}

pub const CASE: Case = Case {
    file: "",
    index: 0,
    service: "SecretsManager",
    region: "us-east-1",
    seeds: &[],
    keys: &[],
    values: &[],
    rendered: None,
    type_: None,
    labels: &[],
    annotations: &[],
    existing: &[],
    edit: None,
    gap: None,
};

const GITHUB_APP: &str = r#"{"argocd-github": {"appId": 123456, "installationId": "7890",
  "privateKey": "-----BEGIN RSA PRIVATE KEY-----\nMIIE-test-Quebec-1\n-----END RSA PRIVATE KEY-----\n",
  "url": "https://github.com/cnoe-io"}}"#;

const PULL_SECRET: &str =
    r#"{"auths":{"registry.example.com":{"auth":"dXNlcjpwdy1TaWVycmEtMQ=="}}}"#;

pub const CASES: &[Case] = &[
    // AWSPREVIOUS and AWSCURRENT of one secret.
    Case {
        file: "006",
        index: 1,
        region: "eu-central-1",
        seeds: &[
            Secret("production/api-key", "api-key-Lima-1"),
            Secret("production/api-key", "api-key-Lima-2"),
        ],
        keys: &["previous-api-key", "current-api-key"],
        values: &[
            ("previous-api-key", "api-key-Lima-1"),
            ("current-api-key", "api-key-Lima-2"),
        ],
        ..CASE
    },
    // A version pinned by VersionId, no longer the current one.
    Case {
        file: "006",
        index: 2,
        region: "eu-central-1",
        seeds: &[
            Version(
                "production/api-key",
                "123e4567-e89b-12d3-a456-426614174000",
                "api-key-Mike-pinned",
            ),
            Secret("production/api-key", "api-key-Mike-current"),
        ],
        keys: &["api-key"],
        values: &[("api-key", "api-key-Mike-pinned")],
        ..CASE
    },
    // ClusterSecretStore cluster-parameter-store: Parameter Store (its name, path-style keys).
    // A template with metadata only keeps the fetched keys.
    Case {
        file: "007",
        service: "ParameterStore",
        seeds: &[
            Param("/service/github/sshUserPrivateKeyUserName", "git", "String"),
            Param(
                "/service/github/sshUserPrivateKey",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn-Tango-1\n-----END OPENSSH PRIVATE KEY-----",
                "SecureString",
            ),
        ],
        keys: &["username", "privateKey"],
        values: &[("username", "git")],
        labels: &[("jenkins.io/credentials-type", "basicSSHUserPrivateKey")],
        annotations: &[("jenkins.io/credentials-description", "github-ssh-access key")],
        ..CASE
    },
    // ClusterSecretStore cluster-secrets-store: Secrets Manager (a JSON secret to extract).
    Case {
        file: "008",
        seeds: &[Secret(
            "service/anchore-engine/engineAccess",
            r#"{"ANCHORE_ADMIN_USERNAME": "admin", "ANCHORE_ADMIN_PASSWORD": "pw-Uniform-2"}"#,
        )],
        keys: &["ANCHORE_ADMIN_USERNAME", "ANCHORE_ADMIN_PASSWORD"],
        values: &[("ANCHORE_ADMIN_PASSWORD", "pw-Uniform-2")],
        ..CASE
    },
    // Secrets Manager (ESO's "get all secrets" page): names matching `key`; `/` becomes `_`.
    Case {
        file: "009",
        seeds: &[
            Secret("db-key", "k-Victor-1"),
            Secret("team/api-key", "k-Victor-2"),
            Secret("unrelated", "x"),
        ],
        keys: &["db-key", "team_api-key"],
        values: &[("team_api-key", "k-Victor-2")],
        ..CASE
    },
    // Secrets Manager: secrets carrying both tags.
    Case {
        file: "010",
        seeds: &[
            Tagged(
                "prod-app-db",
                "db-Whiskey-1",
                &[("environment", "prod"), ("application", "app-name")],
            ),
            Tagged(
                "prod-app-cache",
                "cache-Whiskey-2",
                &[("environment", "prod"), ("application", "app-name")],
            ),
            Tagged(
                "dev-app-db",
                "x",
                &[("environment", "dev"), ("application", "app-name")],
            ),
            Tagged(
                "prod-other-db",
                "x",
                &[("environment", "prod"), ("application", "other")],
            ),
        ],
        keys: &["prod-app-db", "prod-app-cache"],
        values: &[("prod-app-db", "db-Whiskey-1")],
        ..CASE
    },
    // Secrets Manager: names under path/to/my matching `secrets`, the path rewritten away.
    Case {
        file: "011",
        seeds: &[
            Secret("path/to/my/secrets/username", "app"),
            Secret("path/to/my/secrets/password", "pw-Xray-1"),
            Secret("path/to/my/config", "x"),
            Secret("path/to/other/secrets/x", "x"),
        ],
        keys: &["username", "password"],
        values: &[("password", "pw-Xray-1")],
        ..CASE
    },
    // Store: 017 (ClusterSecretStore aws-secretsmanager, SecretsManager, us-west-2). The
    // template replaces the fetched keys; `type: git` is a literal.
    Case {
        file: "018",
        region: "us-west-2",
        seeds: &[Secret("cnoe-ref-impl/github-app", GITHUB_APP)],
        keys: &[
            "type",
            "url",
            "githubAppID",
            "githubAppInstallationID",
            "githubAppPrivateKey",
        ],
        values: &[
            ("type", "git"),
            ("url", "https://github.com/cnoe-io"),
            ("githubAppID", "123456"),
            ("githubAppInstallationID", "7890"),
            (
                "githubAppPrivateKey",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE-test-Quebec-1\n-----END RSA PRIVATE KEY-----\n",
            ),
        ],
        labels: &[("argocd.argoproj.io/secret-type", "repo-creds")],
        ..CASE
    },
    // Store: 024 (ClusterSecretStore parameterstore, ParameterStore, ap-northeast-1).
    Case {
        file: "025",
        service: "ParameterStore",
        region: "ap-northeast-1",
        seeds: &[
            Param(
                "/lolice/alertmanager/RESEND_API_KEY",
                "re_Yankee-1",
                "SecureString",
            ),
            Param(
                "/lolice/alertmanager/ALERT_EMAIL_TO",
                "oncall@example.com",
                "String",
            ),
            Param(
                "/lolice/alertmanager/ALERT_EMAIL_FROM",
                "alertmanager@example.com",
                "String",
            ),
        ],
        keys: &["alertmanager.yaml"],
        rendered: Some(alertmanager),
        ..CASE
    },
    // Store: 028 #0 (SecretStore aws-secrets-manager, SecretsManager; region AWS_REGION, a
    // placeholder: us-east-1 here). Type and labels from the template, keys as fetched.
    Case {
        file: "028",
        index: 1,
        seeds: &[Secret(
            "sealed-secrets",
            r#"{"crt": "-----BEGIN CERTIFICATE-----\nMIIC-Zulu-1\n-----END CERTIFICATE-----",
                "key": "-----BEGIN PRIVATE KEY-----\nMIIE-Zulu-2\n-----END PRIVATE KEY-----"}"#,
        )],
        keys: &["tls.crt", "tls.key"],
        values: &[(
            "tls.crt",
            "-----BEGIN CERTIFICATE-----\nMIIC-Zulu-1\n-----END CERTIFICATE-----",
        )],
        type_: Some("kubernetes.io/tls"),
        labels: &[("sealedsecrets.bitnami.com/sealed-secrets-key", "active")],
        ..CASE
    },
    // SecretStore aws-secrets-manager-store: Secrets Manager (its name).
    Case {
        file: "029",
        seeds: &[Secret("staging/cdo/contentful_api_key", "cf-Alpha-1")],
        keys: &["contentful_api_key"],
        values: &[("contentful_api_key", "cf-Alpha-1")],
        ..CASE
    },
    Case {
        file: "029",
        index: 1,
        seeds: &[Secret("CfnStack/staging/db_endpoint_proxy_reader_port", "5432")],
        keys: &["db_endpoint_proxy_reader_port"],
        values: &[("db_endpoint_proxy_reader_port", "5432")],
        ..CASE
    },
    Case {
        file: "029",
        index: 2,
        seeds: &[
            Secret("staging/cdo/contentful_api_key", "cf-Alpha-2"),
            Secret("staging/cdo/db_password", "pw-Bravo-1"),
            Secret("production/cdo/db_password", "x"),
            Secret("CfnStack/staging/db_endpoint_proxy_reader_port", "5432"),
        ],
        keys: &["contentful_api_key", "db_password"],
        values: &[("db_password", "pw-Bravo-1")],
        ..CASE
    },
    // Refused as written (name NAME, namespace NAMESPACE, marked `XXX: Edit`); edited as asked,
    // it merges one key into a Secret that exists. Secrets Manager (store aws-secrets-manager).
    Case {
        file: "031",
        seeds: &[Secret("provider-key", "merged-Charlie-1")],
        keys: &["already-there", "k8s-key-within-secret-to-be-managed"],
        values: &[
            ("already-there", "kept"),
            ("k8s-key-within-secret-to-be-managed", "merged-Charlie-1"),
        ],
        existing: &[("already-there", "kept")],
        edit: Some(|body| {
            body["metadata"]["name"] = "name".into();
            body["metadata"]["namespace"] = "namespace".into();
        }),
        ..CASE
    },
    // Store: 035 #0 (SecretsManager, ap-south-1); the key is a full ARN. moto resolves an ARN
    // it did not issue by the name after `secret:` (suffix included), so the secret is made
    // under that name in that region.
    Case {
        file: "035",
        index: 1,
        region: "ap-south-1",
        seeds: &[Secret(
            "cloudmart/user-service/db-password-4kc3jw",
            r#"{"DB_PASSWORD": "pw-Delta-1", "DB_NAME": "cloudmart", "DB_USER": "cloudmart_app"}"#,
        )],
        keys: &["DB_PASSWORD", "DB_NAME", "DB_USER", "JWT_SECRET"],
        values: &[
            ("DB_PASSWORD", "pw-Delta-1"),
            ("DB_NAME", "cloudmart"),
            ("DB_USER", "cloudmart_app"),
            ("JWT_SECRET", "pw-Delta-1"),
        ],
        ..CASE
    },
    // ClusterSecretStore eksa-secret-store: Secrets Manager (the EKS Anywhere add-ons keep
    // partner credentials there).
    Case {
        file: "038",
        seeds: &[Secret("/sentinelone/pull-secret", PULL_SECRET)],
        keys: &[".dockerconfigjson"],
        values: &[(".dockerconfigjson", PULL_SECRET)],
        type_: Some("kubernetes.io/dockerconfigjson"),
        ..CASE
    },
    Case {
        file: "038",
        index: 1,
        seeds: &[Secret(
            "/sentinelone/secrets",
            r#"{"site_key": "site-Echo-1", "api_token": "x"}"#,
        )],
        keys: &["site_key"],
        values: &[("site_key", "site-Echo-1")],
        ..CASE
    },
];

/// 025's `alertmanager.yaml` as ESO renders it: the document's template with its three
/// `{{ .key }}` actions replaced by the values (comments inside the block are content).
fn alertmanager(doc: &Value) -> Vec<(String, String)> {
    let template = doc["spec"]["target"]["template"]["data"]["alertmanager.yaml"]
        .as_str()
        .expect("025's template");
    assert_eq!(template.matches("{{").count(), 3, "025's template changed");
    let rendered = template
        .replace("{{ .alert_email_from }}", "alertmanager@example.com")
        .replace("{{ .resend_api_key }}", "re_Yankee-1")
        .replace("{{ .alert_email_to }}", "oncall@example.com");
    vec![("alertmanager.yaml".into(), rendered)]
}
