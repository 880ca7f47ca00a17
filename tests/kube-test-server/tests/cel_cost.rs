//! CRD writes are refused, as kube-apiserver refuses them, when a CEL rule's estimated cost (or
//! the total of a schema's rules) is over budget. Expected numbers follow the API server's
//! arithmetic: cel-go's estimator with the Kubernetes cost library, strings without maxLength
//! sized to fill a 3 MiB request (3 145 728 - 2 = 3 145 726 characters), maxLength counted as
//! 4 bytes per character, and a rule under an unbounded list run 3 145 728 / (min JSON size of
//! the node + 1) times.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_test_server::cel_cost::{check_crd, rule_costs};
use kube_test_server::TestServer;
use serde_json::{json, Value};

const SUFFIX: &str = " (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)";
const SPEC: &str = "spec.validation.openAPIV3Schema.properties[spec]";

fn rule_over(factor: &str) -> String {
    format!("Forbidden: estimated rule cost exceeds budget by factor of {factor}{SUFFIX}")
}

fn total_over(factor: &str) -> String {
    format!("Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of {factor}{SUFFIX}")
}

const CONTRIBUTED: &str = "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema";

/// A namespaced `widgets.example.com` CRD whose only version has `spec` as given.
fn widget_crd(spec: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}}}]}
    })
}

fn costs(crd: &Value) -> Vec<u64> {
    rule_costs(crd).into_iter().map(|c| c.cost).collect()
}

fn crd_api(server: &TestServer) -> Api<CustomResourceDefinition> {
    Api::all(server.client())
}

/// Asserts the API server's 422 for a CRD and returns its `(field, message)` causes.
fn invalid_causes(err: kube::Error, name: &str) -> Vec<(String, String)> {
    let kube::Error::Api(s) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(
        (s.code, s.reason.as_str()),
        (422, "Invalid"),
        "{}",
        s.message
    );
    let prefix = format!("CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: ");
    assert!(s.message.starts_with(&prefix), "{}", s.message);
    let details = s.details.expect("details");
    assert_eq!(
        (
            details.kind.as_str(),
            details.group.as_str(),
            details.name.as_str()
        ),
        ("CustomResourceDefinition", "apiextensions.k8s.io", name)
    );
    details
        .causes
        .into_iter()
        .map(|c| {
            assert_eq!(c.reason, "FieldValueForbidden", "{}", c.message);
            (c.field, c.message)
        })
        .collect()
}

async fn create_refused(server: &TestServer, crd: &Value) -> Vec<(String, String)> {
    let crd: CustomResourceDefinition = serde_json::from_value(crd.clone()).unwrap();
    let name = crd.metadata.name.clone().unwrap();
    let err = crd_api(server)
        .create(&PostParams::default(), &crd)
        .await
        .unwrap_err();
    invalid_causes(err, &name)
}

async fn create_ok(server: &TestServer, crd: &Value) {
    let crd: CustomResourceDefinition = serde_json::from_value(crd.clone()).unwrap();
    crd_api(server)
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
}

fn name_rule_crd(name_schema: Value, rule: &str) -> Value {
    widget_crd(
        json!({"type": "object", "properties": {"name": name_schema},
        "x-kubernetes-validations": [{"rule": rule}]}),
    )
}

#[tokio::test]
async fn matches_costs_the_string_bound_times_the_regex_length() {
    let server = TestServer::start().await.unwrap();
    // 128 characters: regex cost ceil(128 * 0.25) = 32
    let re = format!("^{}+$", "[a-z]".repeat(25));
    let rule = format!("self.name.matches('{re}')");
    // unbounded: ceil((3 145 726 + 1) * 0.1) = 314 573; * 32 = 10 066 336; + `self.name` 2
    //   = 10 066 338 > 10 000 000 by 1.0066338
    let unbounded = name_rule_crd(json!({"type": "string"}), &rule);
    assert_eq!(costs(&unbounded), [10_066_338]);
    assert_eq!(
        create_refused(&server, &unbounded).await,
        [(
            format!("{SPEC}.x-kubernetes-validations[0].rule"),
            rule_over("1.006634x")
        )]
    );
    // maxLength 63: 252 bytes, ceil(253 * 0.1) = 26; * 32 = 832; + 2 = 834
    let bounded = name_rule_crd(json!({"type": "string", "maxLength": 63}), &rule);
    assert_eq!(costs(&bounded), [834]);
    create_ok(&server, &bounded).await;
    // an enum bounds the string by its longest value: 4 bytes, ceil(0.5) = 1; 32 + 2 = 34
    let enumerated = name_rule_crd(json!({"type": "string", "enum": ["a", "abcd"]}), &rule);
    assert_eq!(costs(&enumerated), [34]);
}

#[tokio::test]
async fn iterating_a_list_costs_every_item_that_fits_or_max_items() {
    let ports = |list: Value| {
        widget_crd(json!({"type": "object", "properties": {"ports": list},
            "x-kubernetes-validations": [
                {"rule": "self.ports.all(p, p > 0 && p < 65536)"},
                {"rule": "size(self.ports) > 0"}]}))
    };
    // per item: loop condition @not_strictly_false(@result) 2 + step `@result && (p > 0 &&
    // p < 65536)` 1 + 2 + 2 = 7; plus `self.ports` 2 and the result 1.
    // Unbounded integers (min JSON size 1): (3 145 728 - 2) / 2 = 1 572 863 items
    //   -> 1 572 863 * 7 + 3 = 11 010 044. `size()` is O(1): 1 + `self.ports` 2 + `>` 1 = 4.
    let unbounded = ports(json!({"type": "array", "items": {"type": "integer"}}));
    assert_eq!(costs(&unbounded), [11_010_044, 4]);
    assert_eq!(
        check_crd(&unbounded).unwrap_err(),
        [(
            format!("{SPEC}.x-kubernetes-validations[0].rule"),
            rule_over("1.101004x")
        )]
    );
    // maxItems 64: 64 * 7 + 3 = 451
    let bounded = ports(json!({"type": "array", "maxItems": 64, "items": {"type": "integer"}}));
    assert_eq!(costs(&bounded), [451, 4]);
    assert_eq!(check_crd(&bounded), Ok(()));
}

#[tokio::test]
async fn rules_inside_lists_are_multiplied_by_how_often_they_can_run() {
    let server = TestServer::start().await.unwrap();
    let item = json!({"type": "object",
        "properties": {"a": {"type": "string", "maxLength": 100}},
        "x-kubernetes-validations": [{"rule": "self.a.matches('^x+$')"}]});
    let items = |list: Value| widget_crd(json!({"type": "object", "properties": {"items": list}}));
    let path = format!("{SPEC}.properties[items].items.x-kubernetes-validations[0].rule");
    // one run: `a` is 400 bytes, ceil(401 * 0.1) = 41, * ceil(4 * 0.25) = 1, + 2 = 43.
    // Without maxItems: the item's min JSON size is 2 (`{}`), so 3 145 728 / 3 = 1 048 576
    // runs: 43 * 1 048 576 = 45 088 768, 4.5x the budget.
    let unbounded = items(json!({"type": "array", "items": item}));
    assert_eq!(costs(&unbounded), [45_088_768]);
    assert_eq!(
        create_refused(&server, &unbounded).await,
        [(path, rule_over("4.5x"))]
    );
    // maxItems 50: 43 * 50 = 2 150
    let bounded = items(json!({"type": "array", "maxItems": 50, "items": item}));
    assert_eq!(costs(&bounded), [2_150]);
    // nested lists multiply: 10 * 20 runs, 43 * 200 = 8 600
    let nested = items(json!({"type": "array", "maxItems": 10,
        "items": {"type": "array", "maxItems": 20, "items": item}}));
    assert_eq!(costs(&nested), [8_600]);
    create_ok(&server, &nested).await;
}

#[tokio::test]
async fn a_schema_whose_rules_add_up_over_budget_is_refused() {
    let server = TestServer::start().await.unwrap();
    // each rule: 100-character regex, ceil(100 * 0.25) = 25; unbounded name 314 573 * 25 + 2
    //   = 7 864 327, under the per-rule budget; thirteen of them: 102 236 251 > 100 000 000
    let rule = format!("self.name.matches('^{}$')", "a".repeat(98));
    let rules: Vec<Value> = (0..13).map(|_| json!({"rule": rule})).collect();
    let crd = widget_crd(
        json!({"type": "object", "properties": {"name": {"type": "string"}},
        "x-kubernetes-validations": rules}),
    );
    assert_eq!(costs(&crd), [7_864_327; 13]);
    let mut expected: Vec<(String, String)> = (0..4)
        .map(|i| {
            (
                format!("{SPEC}.x-kubernetes-validations[{i}].rule"),
                CONTRIBUTED.to_string(),
            )
        })
        .collect();
    expected.push((
        "spec.validation.openAPIV3Schema".into(),
        total_over("1.022363x"),
    ));
    assert_eq!(create_refused(&server, &crd).await, expected);
}

#[tokio::test]
async fn cheap_rules_are_accepted() {
    let server = TestServer::start().await.unwrap();
    // `self.replicas >= 0` 1 + 2; `self.mode in ['a', 'b']`: list 10, `in` 2 items + 2; 3 + 14
    let crd = widget_crd(json!({"type": "object",
        "properties": {"replicas": {"type": "integer"}, "mode": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.replicas >= 0 && self.mode in ['a', 'b']"}]}));
    assert_eq!(costs(&crd), [17]);
    create_ok(&server, &crd).await;
    let served = crd_api(&server).get("widgets.example.com").await.unwrap();
    assert_eq!(served.metadata.name.as_deref(), Some("widgets.example.com"));
}

#[tokio::test]
async fn versions_with_different_schemas_are_reported_per_version() {
    let expensive = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object",
            "properties": {"a": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.a.matches('^x+$')"}]}}}}}});
    let cheap = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
    let mut crd = widget_crd(json!({}));
    let version = |name: &str, storage: bool, schema: &Value| {
        json!({"name": name, "served": true, "storage": storage,
            "schema": {"openAPIV3Schema": schema}})
    };
    crd["spec"]["versions"] = json!([
        version("v1", true, &cheap),
        version("v2", false, &expensive)
    ]);
    // an unbounded `a` costs 314 573 per run, + 2; run 1 048 576 times: far over 100x
    let causes = check_crd(&crd).unwrap_err();
    let rule = "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[items].items.x-kubernetes-validations[0].rule";
    assert_eq!(causes[0], (rule.to_string(), rule_over("more than 100x")));
    assert_eq!(
        causes.last().unwrap(),
        &(
            "spec.versions[1].schema.openAPIV3Schema".to_string(),
            total_over("more than 100x")
        )
    );
    // the same schema in every version is validated (and reported) once, at spec.validation
    crd["spec"]["versions"] = json!([
        version("v1", true, &expensive),
        version("v2", false, &expensive)
    ]);
    let causes = check_crd(&crd).unwrap_err();
    assert_eq!(causes.len(), 3, "{causes:?}");
    assert!(causes[0]
        .0
        .starts_with("spec.validation.openAPIV3Schema.properties[spec]"));
}

/// The project's CRDs as they were when kube-apiserver 1.36 refused externalsecrets.
fn fixture_crds() -> Vec<Value> {
    let text = include_str!("fixtures/unbounded-crds.yaml");
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

/// What kube-apiserver answers for the fixture's externalsecrets CRD.
fn externalsecrets_causes() -> Vec<(String, String)> {
    let remote = format!("{SPEC}.properties[data].items.properties[remoteRef]");
    let extract = format!("{SPEC}.properties[dataFrom].items.properties[extract]");
    let find = format!("{SPEC}.properties[dataFrom].items.properties[find]");
    let rule = |at: &str, i: usize| format!("{at}.x-kubernetes-validations[{i}].rule");
    let over100 = rule_over("more than 100x");
    vec![
        // `!has(self.version) || (has(self.service) && self.service == 'ParameterStore') ||
        // self.key.matches('^arn:[^:]+:ssm:')`: 2 + (1 + 2 + ceil(14 * 0.1)) + 2 +
        // ceil(3 145 727 * 0.1) * ceil(15 * 0.25) = 1 258 301 per run; remoteRef requires `key`
        // (min JSON 2 + 3 + 2 + 4 = 11), so 3 145 728 / 12 = 262 144 runs
        (rule(&remote, 1), over100.clone()),
        // the same shape with one more `has()`: 1 258 304 per run
        (rule(&remote, 2), over100.clone()),
        (rule(&extract, 1), over100.clone()),
        (rule(&extract, 2), over100.clone()),
        // the ternary: condition 1 + 4, longer branch 9, 14 per run; `find` requires nothing
        // (min JSON 2) so 1 048 576 runs: 14 680 064, 1.4680064x
        (rule(&find, 0), rule_over("1.468006x")),
        (rule(&remote, 2), CONTRIBUTED.into()),
        (rule(&extract, 2), CONTRIBUTED.into()),
        (rule(&remote, 1), CONTRIBUTED.into()),
        (rule(&extract, 1), CONTRIBUTED.into()),
        (
            "spec.validation.openAPIV3Schema".into(),
            total_over("more than 100x"),
        ),
    ]
}

#[tokio::test]
async fn the_unbounded_project_crds_are_refused_as_a_real_server_refuses_them() {
    let server = TestServer::start().await.unwrap();
    let crds = fixture_crds();
    let names: Vec<&str> = crds
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "secretstores.arnsync.io",
            "clustersecretstores.arnsync.io",
            "externalsecrets.arnsync.io"
        ]
    );
    assert_eq!(check_crd(&crds[2]).unwrap_err(), externalsecrets_causes());
    // dry run and real create answer alike, and nothing is stored
    let es: CustomResourceDefinition = serde_json::from_value(crds[2].clone()).unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let err = crd_api(&server).create(&dry, &es).await.unwrap_err();
    assert_eq!(
        invalid_causes(err, "externalsecrets.arnsync.io"),
        externalsecrets_causes()
    );
    assert_eq!(
        create_refused(&server, &crds[2]).await,
        externalsecrets_causes()
    );
    assert!(crd_api(&server)
        .get_opt("externalsecrets.arnsync.io")
        .await
        .unwrap()
        .is_none());
    for store in &crds[..2] {
        assert_eq!(check_crd(store), Ok(()));
        create_ok(&server, store).await;
    }
}

#[tokio::test]
async fn apply_update_and_patch_are_refused_the_same_way() {
    let server = TestServer::start().await.unwrap();
    let api = crd_api(&server);
    let es = fixture_crds().remove(2);
    let name = "externalsecrets.arnsync.io";
    let err = api
        .patch(name, &PatchParams::apply("kubectl"), &Patch::Apply(&es))
        .await
        .unwrap_err();
    assert_eq!(invalid_causes(err, name), externalsecrets_causes());
    assert!(api.get_opt(name).await.unwrap().is_none());

    // a cheap version is accepted; replacing or patching it with the expensive one is not
    let mut cheap = es.clone();
    cheap["spec"]["versions"][0]["schema"] = json!({"openAPIV3Schema": {"type": "object"}});
    create_ok(&server, &cheap).await;
    let mut stored = api.get(name).await.unwrap();
    stored.spec = serde_json::from_value(es["spec"].clone()).unwrap();
    let err = api
        .replace(name, &PostParams::default(), &stored)
        .await
        .unwrap_err();
    assert_eq!(invalid_causes(err, name), externalsecrets_causes());
    let err = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": es["spec"]})),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_causes(err, name), externalsecrets_causes());
    let kept = api.get(name).await.unwrap();
    let schema = serde_json::to_value(&kept.spec.versions[0].schema).unwrap();
    assert_eq!(schema, json!({"openAPIV3Schema": {"type": "object"}}));
}
