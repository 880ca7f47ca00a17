use super::*;

fn stage(s: &str) -> Selector {
    Selector::Stage(s.into())
}

#[tokio::test]
async fn secrets_versions_and_stages() {
    let m = MemorySource::new();
    let v1 = m.put_secret_string("app", "one");
    let v2 = m.put_secret_binary("app", &[0, 159, 146, 150]);

    let current = m
        .get(&Fetch::secret("app", stage("AWSCURRENT")))
        .await
        .unwrap();
    assert_eq!(current.data.0, vec![0, 159, 146, 150]);
    assert!(current.binary);
    assert_eq!(current.version, v2);
    assert_eq!(current.name, "app");

    let previous = m
        .get(&Fetch::secret("app", stage("AWSPREVIOUS")))
        .await
        .unwrap();
    assert_eq!(previous.data.0, b"one");
    assert!(!previous.binary);

    let pinned = m
        .get(&Fetch::secret("app", Selector::VersionId(v1.clone())))
        .await;
    assert_eq!(pinned.unwrap().version, v1);

    m.set_secret_stage("app", "AWSCURRENT", &v1);
    let current = m
        .get(&Fetch::secret("app", stage("AWSCURRENT")))
        .await
        .unwrap();
    assert_eq!(current.version, v1);
    let previous = m
        .get(&Fetch::secret("app", stage("AWSPREVIOUS")))
        .await
        .unwrap();
    assert_eq!(previous.version, v2);

    m.set_secret_stage("app", "blue", &v2);
    let blue = m.get(&Fetch::secret("app", stage("blue"))).await.unwrap();
    assert_eq!(blue.version, v2);
    assert_eq!(m.calls("GetSecretValue"), 6);
}

#[tokio::test]
async fn missing_secrets_and_versions_are_not_found() {
    let m = MemorySource::new();
    m.put_secret_string("app", "one");
    for fetch in [
        Fetch::secret("nope", stage("AWSCURRENT")),
        Fetch::secret("app", stage("AWSPENDING")),
        Fetch::secret("app", Selector::VersionId("nope".into())),
    ] {
        let err = m.get(&fetch).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.code, "ResourceNotFoundException");
        assert_eq!(err.operation, "GetSecretValue");
    }
    let err = m
        .get(&Fetch::secret("app", Selector::Latest))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn parameters_versions_and_labels() {
    let m = MemorySource::new();
    m.put_parameter("/app/db", "a");
    let v2 = m.put_parameter("/app/db", "b,c");
    m.put_parameter("/app/db", "d");
    m.label_parameter("/app/db", v2, "stable");

    let latest = m
        .get(&Fetch::parameter("/app/db", Selector::Latest))
        .await
        .unwrap();
    assert_eq!(
        (latest.data.0.as_slice(), latest.version.as_str()),
        (&b"d"[..], "3")
    );
    let one = Fetch::parameter("/app/db", Selector::ParameterVersion("1".into()));
    assert_eq!(m.get(&one).await.unwrap().data.0, b"a");
    let stable = Fetch::parameter("/app/db", Selector::ParameterVersion("stable".into()));
    let stable = m.get(&stable).await.unwrap();
    assert_eq!(
        (stable.data.0.as_slice(), stable.version.as_str()),
        (&b"b,c"[..], "2")
    );

    let err = m
        .get(&Fetch::parameter("/nope", Selector::Latest))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::NotFound, "ParameterNotFound")
    );
    let nine = Fetch::parameter("/app/db", Selector::ParameterVersion("9".into()));
    let err = m.get(&nine).await.unwrap_err();
    assert_eq!(err.code, "ParameterVersionNotFound");
    assert_eq!(m.calls("GetParameter"), 5);
}

#[tokio::test]
async fn parameter_paths() {
    let m = MemorySource::new();
    m.put_parameter("/app/b", "2");
    m.put_parameter("/app/a", "1");
    m.put_parameter("/app/deep/c", "3");
    m.put_parameter("/application", "no");
    let names = |values: Vec<Value>| values.into_iter().map(|v| v.name).collect::<Vec<_>>();
    let flat = Find::ParameterPath {
        path: "/app".into(),
        recursive: false,
    };
    assert_eq!(names(m.find(&flat).await.unwrap()), ["/app/a", "/app/b"]);
    let deep = Find::ParameterPath {
        path: "/app/".into(),
        recursive: true,
    };
    assert_eq!(
        names(m.find(&deep).await.unwrap()),
        ["/app/a", "/app/b", "/app/deep/c"]
    );
}

#[tokio::test]
async fn secrets_by_name_and_tags() {
    let m = MemorySource::new();
    m.put_secret_string("prod/b", "b");
    m.put_secret_string("prod/a", "a");
    m.put_secret_string("dev/a", "x");
    m.tag_secret("prod/a", "team", "pay");
    m.tag_secret("dev/a", "team", "pay");
    let find = |re: Option<&str>, tags: &[(&str, &str)]| Find::Secrets {
        name_regexp: re.map(String::from),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let names = |values: Vec<Value>| values.into_iter().map(|v| v.name).collect::<Vec<_>>();
    let by_name = m.find(&find(Some("^prod/"), &[])).await.unwrap();
    assert_eq!(names(by_name), ["prod/a", "prod/b"]);
    let by_tag = m.find(&find(None, &[("team", "pay")])).await.unwrap();
    assert_eq!(names(by_tag), ["dev/a", "prod/a"]);
    let both = m
        .find(&find(Some("^prod/"), &[("team", "pay")]))
        .await
        .unwrap();
    assert_eq!(names(both), ["prod/a"]);
    let bad = m.find(&find(Some("("), &[])).await.unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn injected_failures_and_counts() {
    let m = MemorySource::new();
    m.put_parameter("/p", "v");
    m.fail(
        Service::ParameterStore,
        "/p",
        ErrorKind::AccessDenied,
        "AccessDeniedException",
    );
    let err = m
        .get(&Fetch::parameter("/p", Selector::Latest))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert_eq!(err.operation, "GetParameter");
    assert_eq!(err.key, "/p");
    m.clear_failure(Service::ParameterStore, "/p");
    m.get(&Fetch::parameter("/p", Selector::Latest))
        .await
        .unwrap();
    assert_eq!(m.calls("GetParameter"), 2);
    assert_eq!(m.calls("GetSecretValue"), 0);
}

#[test]
fn secret_bytes_debug_is_redacted() {
    let v = Value {
        service: Service::SecretsManager,
        name: "n".into(),
        data: SecretBytes(b"hunter2".to_vec()),
        binary: false,
        version: "1".into(),
        created: None,
    };
    let shown = format!("{v:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("7 bytes redacted"), "{shown}");
}
