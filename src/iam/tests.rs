use serde_json::{json, Value as Json};

use super::check::{compare, glob, matches_action, parse};
use super::*;
use crate::api::{ClusterSecretStoreSpec, SecretStoreSpec};

fn store(name: &str, aws: Json) -> Store {
    let spec: SecretStoreSpec =
        serde_json::from_value(json!({"provider": {"aws": aws}})).expect("a store spec");
    Store {
        kind: StoreKind::SecretStore,
        namespace: Some("app".into()),
        name: name.into(),
        settings: spec.aws(),
    }
}

fn store_with(name: &str, spec: Json) -> Store {
    let spec: ClusterSecretStoreSpec = serde_json::from_value(spec).expect("a store spec");
    Store {
        kind: StoreKind::ClusterSecretStore,
        namespace: None,
        name: name.into(),
        settings: spec.aws(),
    }
}

fn reader(store: &str, spec: Json) -> Reader {
    let mut spec = spec;
    spec["secretStoreRef"] = json!({"name": store});
    Reader {
        label: "ExternalSecret app/x".into(),
        namespace: Some("app".into()),
        spec: serde_json::from_value(spec).expect("an ExternalSecret spec"),
    }
}

fn only(inputs: &Inputs, account: Option<&str>) -> Principal {
    let (principals, _) = plan(inputs, account);
    let with_grants: Vec<Principal> = principals
        .into_iter()
        .filter(|p| !p.grants.is_empty())
        .collect();
    assert_eq!(with_grants.len(), 1, "{with_grants:#?}");
    with_grants.into_iter().next().unwrap()
}

fn policy_json(p: &Principal) -> Json {
    serde_json::to_value(p.policy()).unwrap()
}

fn statement(p: &Principal, sid: &str) -> Json {
    policy_json(p)["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .cloned()
        .unwrap_or_else(|| panic!("no {sid} in {:#}", policy_json(p)))
}

fn sids(p: &Principal) -> Vec<String> {
    policy_json(p)["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn secret_names_get_the_random_suffix_and_arns_stay_as_written() {
    let inputs = Inputs {
        stores: vec![store(
            "aws",
            json!({"service": "SecretsManager", "region": "eu-west-1", "prefix": "prod/"}),
        )],
        readers: vec![reader(
            "aws",
            json!({"data": [
                {"secretKey": "a", "remoteRef": {"key": "db"}},
                {"secretKey": "b", "remoteRef": {"key": "arn:aws:secretsmanager:eu-west-1:999999999999:secret:shared-AbCdEf"}},
            ]}),
        )],
        ..Inputs::default()
    };
    let p = only(&inputs, Some("123456789012"));
    assert_eq!(p.id, "operator");
    let s = statement(&p, "ReadSecrets");
    assert_eq!(
        s["Action"],
        json!([
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue"
        ])
    );
    assert_eq!(
        s["Resource"],
        json!([
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-??????",
            "arn:aws:secretsmanager:eu-west-1:999999999999:secret:shared-AbCdEf"
        ])
    );
    // Two AWSCURRENT reads go together; the watcher lists secrets.
    assert_eq!(sids(&p), ["ReadSecrets", "ListSecrets", "BatchReadSecrets"]);
    assert_eq!(statement(&p, "ListSecrets")["Resource"], "*");
}

#[test]
fn one_pinned_secret_needs_neither_listing_nor_batches() {
    let inputs = Inputs {
        stores: vec![store(
            "aws",
            json!({"service": "SecretsManager", "region": "cn-north-1"}),
        )],
        readers: vec![reader(
            "aws",
            json!({"data": [{"secretKey": "a", "remoteRef": {"key": "db", "version": "uuid/1234"}}]}),
        )],
        ..Inputs::default()
    };
    let p = only(&inputs, None);
    assert_eq!(sids(&p), ["ReadSecrets"]);
    assert_eq!(
        statement(&p, "ReadSecrets")["Resource"],
        "arn:aws-cn:secretsmanager:cn-north-1:*:secret:db-??????"
    );
}

#[test]
fn parameter_arns_do_not_double_the_slash_and_finds_cover_the_path() {
    let inputs = Inputs {
        stores: vec![store(
            "ssm",
            json!({"service": "ParameterStore", "region": "us-gov-west-1", "role": "arn:aws-us-gov:iam::222222222222:role/reader"}),
        )],
        readers: vec![reader(
            "ssm",
            json!({
                "data": [
                    {"secretKey": "a", "remoteRef": {"key": "/prod/db/url"}},
                    {"secretKey": "b", "remoteRef": {"key": "plain", "version": "3"}},
                ],
                "dataFrom": [{"find": {"path": "/prod/app/"}}],
            }),
        )],
        ..Inputs::default()
    };
    let (principals, _) = plan(&inputs, None);
    let p = principals
        .into_iter()
        .find(|p| p.id == "arn:aws-us-gov:iam::222222222222:role/reader")
        .unwrap();
    assert_eq!(sids(&p), ["ReadParameters", "FindParametersByPath"]);
    let read = statement(&p, "ReadParameters");
    assert_eq!(
        read["Action"],
        json!(["ssm:GetParameter", "ssm:GetParameters"])
    );
    assert_eq!(
        read["Resource"],
        json!([
            "arn:aws-us-gov:ssm:us-gov-west-1:222222222222:parameter/plain",
            "arn:aws-us-gov:ssm:us-gov-west-1:222222222222:parameter/prod/app/*",
            "arn:aws-us-gov:ssm:us-gov-west-1:222222222222:parameter/prod/db/url",
        ])
    );
    let find = statement(&p, "FindParametersByPath");
    assert_eq!(find["Action"], "ssm:GetParametersByPath");
    assert_eq!(
        find["Resource"],
        json!([
            "arn:aws-us-gov:ssm:us-gov-west-1:222222222222:parameter/prod/app",
            "arn:aws-us-gov:ssm:us-gov-west-1:222222222222:parameter/prod/app/*",
        ])
    );
}

#[test]
fn a_secrets_manager_find_lists_batches_and_reads_below_its_prefix() {
    let inputs = Inputs {
        stores: vec![store(
            "aws",
            json!({"service": "SecretsManager", "region": "us-east-1"}),
        )],
        readers: vec![reader(
            "aws",
            json!({"refreshPolicy": "OnChange", "dataFrom": [
                {"find": {"name": {"regexp": "^team\\.a/db-.*"}}},
                {"find": {"tags": {"team": "b"}}},
            ]}),
        )],
        ..Inputs::default()
    };
    let p = only(&inputs, Some("1"));
    assert_eq!(sids(&p), ["ReadSecrets", "ListSecrets", "BatchReadSecrets"]);
    assert_eq!(
        statement(&p, "ReadSecrets")["Resource"],
        json!([
            "arn:aws:secretsmanager:us-east-1:1:secret:*",
            "arn:aws:secretsmanager:us-east-1:1:secret:team.a/db-*",
        ])
    );
    assert_eq!(
        statement(&p, "BatchReadSecrets")["Action"],
        "secretsmanager:BatchGetSecretValue"
    );
}

#[test]
fn regexp_prefixes_stop_at_the_first_pattern_character() {
    assert_eq!(literal_prefix("^prod/db-.*"), "prod/db-");
    assert_eq!(literal_prefix("^prods?/x"), "prod");
    assert_eq!(literal_prefix("prod/.*"), "");
    assert_eq!(literal_prefix("^a\\.b(c|d)"), "a.b");
}

#[test]
fn role_chains_grant_each_step_to_the_one_before_and_reads_to_the_last() {
    let inputs = Inputs {
        stores: vec![store(
            "aws",
            json!({
                "service": "SecretsManager", "region": "us-east-1",
                "additionalRoles": ["arn:aws:iam::111111111111:role/hop"],
                "role": "arn:aws:iam::222222222222:role/team",
                "sessionTags": [{"key": "team", "value": "a"}],
            }),
        )],
        readers: vec![reader(
            "aws",
            json!({"data": [{"secretKey": "a", "remoteRef": {"key": "db"}}]}),
        )],
        ..Inputs::default()
    };
    let (principals, _) = plan(&inputs, None);
    let ids: Vec<&str> = principals.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "arn:aws:iam::111111111111:role/hop",
            "arn:aws:iam::222222222222:role/team",
            "operator"
        ]
    );
    let assume = |p: &Principal| statement(p, "AssumeRole");
    assert_eq!(assume(&principals[2])["Action"], "sts:AssumeRole");
    assert_eq!(
        assume(&principals[2])["Resource"],
        "arn:aws:iam::111111111111:role/hop"
    );
    assert_eq!(
        assume(&principals[0])["Action"],
        json!(["sts:AssumeRole", "sts:TagSession"])
    );
    assert_eq!(
        assume(&principals[0])["Resource"],
        "arn:aws:iam::222222222222:role/team"
    );
    assert_eq!(sids(&principals[1]), ["ReadSecrets", "ListSecrets"]);
    // The account of the reading role fills the ARNs built from names.
    assert_eq!(
        statement(&principals[1], "ReadSecrets")["Resource"],
        "arn:aws:secretsmanager:us-east-1:222222222222:secret:db-??????"
    );
}

#[test]
fn web_identity_and_static_keys_name_their_principal() {
    let jwt = |sa: &str, role: Option<&str>| {
        let mut aws = json!({"service": "SecretsManager", "region": "us-east-1",
            "auth": {"jwt": {"serviceAccountRef": {"name": sa}}}});
        if let Some(role) = role {
            aws["role"] = json!(role);
        }
        store(sa, aws)
    };
    let keys = store(
        "keys",
        json!({"service": "SecretsManager", "region": "us-east-1", "auth": {"secretRef": {
            "accessKeyIDSecretRef": {"name": "aws-keys", "key": "id"},
            "secretAccessKeySecretRef": {"name": "aws-keys", "key": "secret"}}}}),
    );
    let inputs = Inputs {
        stores: vec![
            jwt("annotated", None),
            jwt("plain", Some("arn:aws:iam::3:role/direct")),
            jwt("unknown", None),
            keys,
        ],
        readers: ["annotated", "plain", "unknown", "keys"]
            .iter()
            .map(|s| {
                reader(
                    s,
                    json!({"data": [{"secretKey": "a", "remoteRef": {"key": s}}]}),
                )
            })
            .collect(),
        service_accounts: BTreeMap::from([
            (
                ("app".into(), "annotated".into()),
                Some("arn:aws:iam::4:role/irsa".into()),
            ),
            (("app".into(), "plain".into()), None),
        ]),
    };
    let (principals, _) = plan(&inputs, None);
    let ids: Vec<&str> = principals.iter().map(|p| p.id.as_str()).collect();
    // Without the role annotation the token is exchanged for the store's role directly: no
    // AssumeRole step.
    assert_eq!(
        ids,
        [
            "arn:aws:iam::3:role/direct",
            "arn:aws:iam::4:role/irsa",
            "secret:app/aws-keys",
            "serviceaccount:app/unknown"
        ]
    );
    assert!(principals
        .iter()
        .all(|p| !p.grants.contains_key(&Purpose::AssumeRole)));
}

#[test]
fn event_queues_are_granted_by_arn_and_urls_become_arns() {
    let queue = |name: &str, q: &str| {
        store_with(
            name,
            json!({"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1"}},
                   "arnsync": {"eventQueue": q}}),
        )
    };
    let inputs = Inputs {
        stores: vec![
            queue(
                "by-url",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/rotations",
            ),
            queue("by-arn", "arn:aws:sqs:eu-west-1:123456789012:other"),
        ],
        ..Inputs::default()
    };
    let p = only(&inputs, None);
    let s = statement(&p, "EventQueue");
    assert_eq!(
        s["Action"],
        json!(["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"])
    );
    assert_eq!(
        s["Resource"],
        json!([
            "arn:aws:sqs:eu-west-1:123456789012:other",
            "arn:aws:sqs:eu-west-1:123456789012:rotations"
        ])
    );
}

#[test]
fn customer_managed_keys_decrypt_only_through_their_service() {
    let mut p = Principal::default();
    p.decrypt(
        Service::SecretsManager,
        "us-east-1",
        "arn:aws:kms:us-east-1:1:key/a",
    );
    p.decrypt(
        Service::ParameterStore,
        "cn-north-1",
        "arn:aws-cn:kms:cn-north-1:1:key/b",
    );
    let s = statement(&p, "DecryptSecrets");
    assert_eq!(s["Action"], "kms:Decrypt");
    assert_eq!(s["Resource"], "arn:aws:kms:us-east-1:1:key/a");
    assert_eq!(
        s["Condition"],
        json!({"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}})
    );
    assert_eq!(
        statement(&p, "DecryptParameters")["Condition"]["StringEquals"]["kms:ViaService"],
        "ssm.cn-north-1.amazonaws.com.cn"
    );
}

#[test]
fn readers_use_only_the_store_of_their_namespace() {
    let mut other = store(
        "aws",
        json!({"service": "ParameterStore", "region": "us-east-1"}),
    );
    other.namespace = Some("elsewhere".into());
    let inputs = Inputs {
        stores: vec![other],
        readers: vec![reader(
            "aws",
            json!({"data": [{"secretKey": "a", "remoteRef": {"key": "x"}}]}),
        )],
        ..Inputs::default()
    };
    let (principals, unused) = plan(&inputs, None);
    assert!(principals.iter().all(|p| p.grants.is_empty()));
    assert_eq!(unused.len(), 1);
    assert!(
        unused[0].starts_with("ExternalSecret app/x: "),
        "{unused:?}"
    );
}

#[test]
fn wildcards_match_as_iam_does() {
    assert!(glob(
        "arn:aws:secretsmanager:*:*:secret:prod/*",
        "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-??????"
    ));
    assert!(glob("a?c", "abc"));
    assert!(!glob("a?c", "ac"));
    assert!(glob("*", ""));
    assert!(glob("a*b*c", "aXXbYYc"));
    assert!(!glob("a*b*c", "aXXbYY"));
    assert!(!glob("Prod/*", "prod/x"), "resources are case-sensitive");
    assert!(matches_action(
        "SecretsManager:Get*",
        "secretsmanager:GetSecretValue"
    ));
    assert!(!matches_action(
        "secretsmanager:Get*",
        "secretsmanager:DescribeSecret"
    ));
}

fn needed_policy() -> Principal {
    let inputs = Inputs {
        stores: vec![store(
            "aws",
            json!({"service": "SecretsManager", "region": "us-east-1"}),
        )],
        readers: vec![reader(
            "aws",
            json!({"data": [{"secretKey": "a", "remoteRef": {"key": "db"}}]}),
        )],
        ..Inputs::default()
    };
    only(&inputs, Some("1"))
}

#[test]
fn the_generated_policy_checks_clean() {
    let p = needed_policy();
    let written = parse(&policy_json(&p)).unwrap();
    assert_eq!(compare(&p.policy(), &written), check::Report::default());
}

#[test]
fn a_missing_action_is_named_with_its_resource() {
    let p = needed_policy();
    let written = parse(&json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:us-east-1:1:secret:db-??????"},
        {"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"},
    ]}))
    .unwrap();
    let report = compare(&p.policy(), &written);
    let missing: Vec<String> = report.missing.iter().map(ToString::to_string).collect();
    assert_eq!(
        missing,
        ["secretsmanager:DescribeSecret on arn:aws:secretsmanager:us-east-1:1:secret:db-??????"]
    );
    assert!(report.excess.is_empty());
}

#[test]
fn wildcards_grant_but_are_reported_as_broader_than_needed() {
    let p = needed_policy();
    let written = parse(&json!({"Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
    ]}))
    .unwrap();
    let report = compare(&p.policy(), &written);
    assert!(report.missing.is_empty(), "{report:?}");
    assert_eq!(
        report.excess,
        [
            "Statement[0]: secretsmanager:* grants more actions than needed (secretsmanager:DescribeSecret, secretsmanager:GetSecretValue, secretsmanager:ListSecrets)",
            "Statement[0]: secretsmanager:* on * is broader than needed (arn:aws:secretsmanager:us-east-1:1:secret:db-??????)",
            "Statement[1]: s3:GetObject is not needed",
        ]
    );
}

#[test]
fn a_deny_takes_away_what_an_allow_grants() {
    let p = needed_policy();
    let written = parse(&json!({"Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "secretsmanager:ListSecrets"], "Resource": "*"},
        {"Effect": "Deny", "NotAction": "secretsmanager:ListSecrets", "Resource": "*"},
    ]}))
    .unwrap();
    let report = compare(&p.policy(), &written);
    assert_eq!(report.missing.len(), 2, "{report:?}");
}

#[test]
fn malformed_policies_name_the_statement_and_field() {
    let err = |j: Json| parse(&j).unwrap_err();
    assert_eq!(err(json!({"Version": "2012-10-17"})), "Statement: missing");
    assert_eq!(
        err(
            json!({"Statement": [{"Effect": "Allow", "Action": "a:b", "Resource": "*"}, {"Effect": "Maybe"}]})
        ),
        "Statement[1]: Effect: expected \"Allow\" or \"Deny\""
    );
    assert_eq!(
        err(json!({"Statement": [{"Effect": "Allow", "Action": [1], "Resource": "*"}]})),
        "Statement[0]: Action: expected a string or an array of strings"
    );
    assert_eq!(
        err(json!({"Statement": [{"Effect": "Allow", "Action": "a:b"}]})),
        "Statement[0]: Resource: missing"
    );
}

#[test]
fn failover_regions_get_the_same_secrets_and_parameters_stay_in_the_primary() {
    let inputs = Inputs {
        stores: vec![store(
            "aws",
            json!({"service": "SecretsManager", "region": "us-east-1", "failoverRegions": ["us-west-2"]}),
        )],
        readers: vec![reader(
            "aws",
            json!({"data": [
                {"secretKey": "a", "remoteRef": {"key": "db"}},
                {"secretKey": "b", "remoteRef": {"key": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf"}},
                {"secretKey": "c", "remoteRef": {"key": "arn:aws:ssm:us-east-1:123456789012:parameter/app/url"}},
            ]}),
        )],
        ..Inputs::default()
    };
    let p = only(&inputs, Some("123456789012"));
    assert_eq!(
        statement(&p, "ReadSecrets")["Resource"],
        json!([
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-??????",
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:api-AbCdEf",
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-??????"
        ])
    );
    // Parameter Store has no replicas: nothing is read elsewhere.
    assert_eq!(
        statement(&p, "ReadParameters")["Resource"],
        "arn:aws:ssm:us-east-1:123456789012:parameter/app/url"
    );
}
