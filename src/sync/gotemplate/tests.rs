//! The language: actions, control structures, variables, trimming, errors, and the template
//! forms of real ExternalSecret manifests.

use std::collections::BTreeMap;

use super::{Map, Template, Value};

pub(super) fn root(pairs: &[(&str, &str)]) -> Value {
    Value::Map(Map::of_strings(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect::<BTreeMap<_, _>>(),
    ))
}

pub(super) fn run(t: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
    let out = Template::parse(t)?.execute(&root(pairs))?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

fn ok(t: &str, pairs: &[(&str, &str)]) -> String {
    run(t, pairs).unwrap_or_else(|e| panic!("{t:?}: {e}"))
}

fn err(t: &str, pairs: &[(&str, &str)]) -> String {
    match run(t, pairs) {
        Ok(out) => panic!("{t:?} rendered {out:?}, wanted an error"),
        Err(e) => e,
    }
}

#[test]
fn trim_markers_eat_adjacent_whitespace_only_with_a_space_after_the_dash() {
    assert_eq!(ok("a \n {{- .x -}} \n b", &[("x", "1")]), "a1b");
    assert_eq!(ok("a {{- /* note */ -}} b", &[]), "ab");
    assert_eq!(ok("a {{/* note */}} b", &[]), "a  b");
    assert_eq!(ok("{{-3}} {{ 4 -}}\n!", &[]), "-3 4!");
}

#[test]
fn if_else_if_else_with_truthiness() {
    let t = r#"{{ if eq .env "prod" }}P{{ else if .debug }}D{{ else }}O{{ end }}"#;
    assert_eq!(ok(t, &[("env", "prod"), ("debug", "")]), "P");
    assert_eq!(ok(t, &[("env", "dev"), ("debug", "yes")]), "D");
    assert_eq!(ok(t, &[("env", "dev"), ("debug", "")]), "O");
    assert_eq!(
        ok(
            "{{ if 0 }}y{{ else }}n{{ end }}{{ if list 1 }}y{{ end }}",
            &[]
        ),
        "ny"
    );
}

#[test]
fn range_over_lists_maps_and_ints_with_else_break_continue() {
    let t = r#"{{ range $i, $v := splitList "," .l }}{{ $i }}={{ $v }};{{ end }}"#;
    assert_eq!(ok(t, &[("l", "a,b")]), "0=a;1=b;");
    // Maps iterate in key order; `$` stays the root inside.
    let t = r#"{{ range $k, $v := . }}{{ $k }}:{{ $v }}:{{ len $ }} {{ end }}"#;
    assert_eq!(ok(t, &[("b", "2"), ("a", "1")]), "a:1:2 b:2:2 ");
    assert_eq!(
        ok("{{ range . }}{{ . }}{{ end }}", &[("b", "2"), ("a", "1")]),
        "12"
    );
    assert_eq!(
        ok("{{ range list }}x{{ else }}empty{{ end }}", &[]),
        "empty"
    );
    let t = "{{ range 6 }}{{ if eq . 1 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}";
    assert_eq!(ok(t, &[]), "023");
}

#[test]
fn with_sets_dot_and_else_with_chains() {
    let t = r#"{{ with .a }}[{{ . }}]{{ else with .b }}({{ . }}){{ else }}none{{ end }}"#;
    assert_eq!(ok(t, &[("a", "x"), ("b", "y")]), "[x]");
    assert_eq!(ok(t, &[("a", ""), ("b", "y")]), "(y)");
    assert_eq!(ok(t, &[("a", ""), ("b", "")]), "none");
}

#[test]
fn variables_declare_assign_and_scope() {
    let t = "{{ $x := 1 }}{{ range list 1 2 3 }}{{ $x = add $x . }}{{ end }}{{ $x }}";
    assert_eq!(
        ok(t, &[]),
        "7",
        "assignment in a range updates the outer variable"
    );
    let t = "{{ $x := \"outer\" }}{{ if true }}{{ $x := \"inner\" }}{{ $x }}{{ end }} {{ $x }}";
    assert_eq!(ok(t, &[]), "inner outer");
    let e = err("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}", &[]);
    assert_eq!(e, r#"line 1 col 39: undefined variable "$y""#);
    assert_eq!(
        ok("{{ $x := .a }}", &[("a", "1")]),
        "",
        "a declaration prints nothing"
    );
}

#[test]
fn declarations_in_if_and_range_and_actions_over_several_lines() {
    assert_eq!(
        ok("{{ if $x := .a }}[{{ $x }}]{{ end }}", &[("a", "v")]),
        "[v]"
    );
    assert_eq!(
        ok(
            "{{ range $v := . }}{{ $v }}{{ end }}",
            &[("b", "2"), ("a", "1")]
        ),
        "12"
    );
    assert_eq!(ok("{{ dict\n    \"a\" 1\n  | toJson }}", &[]), r#"{"a":1}"#);
    let t = r#"{{ define "t" }}{{ $ }}{{ end }}{{ template "t" }}|{{ template "t" .a }}"#;
    assert_eq!(
        ok(t, &[("a", "x")]),
        "<no value>|x",
        "a template's $ is its own dot"
    );
}

#[test]
fn pipelines_pass_the_value_as_the_last_argument() {
    let p = [("a", "A"), ("b", "B")];
    assert_eq!(ok(r#"{{ .a | printf "%s-%s" .b }}"#, &p), "B-A");
    assert_eq!(
        ok(r#"{{ (printf "%s%s" .a .b) | lower | printf "<%s>" }}"#, &p),
        "<ab>"
    );
    assert_eq!(
        ok(r#"{{ (dict "k" .a).k }}"#, &p),
        "A",
        "fields chain on a parenthesized value"
    );
    let e = err(r#"{{ .a | "x" }}"#, &p);
    assert_eq!(
        e,
        "line 1 col 9: non executable command in pipeline stage 2"
    );
}

#[test]
fn and_or_short_circuit_like_go() {
    let t = r#"{{ if and (hasKey . "x") (eq .x "1") }}yes{{ else }}no{{ end }}"#;
    assert_eq!(
        ok(t, &[]),
        "no",
        ".x is never evaluated when the key is absent"
    );
    assert_eq!(ok(t, &[("x", "1")]), "yes");
    assert_eq!(
        ok(
            r#"{{ or .a "fallback" }}|{{ and 1 "" 2 }}|{{ and 1 2 }}"#,
            &[("a", "")]
        ),
        "fallback||2"
    );
}

#[test]
fn define_template_and_block() {
    let t = r#"{{ define "url" }}{{ .user }}@{{ .host }}{{ end }}a={{ template "url" . }} b={{ block "tail" .user }}<{{ . }}>{{ end }}"#;
    assert_eq!(ok(t, &[("user", "u"), ("host", "h")]), "a=u@h b=<u>");
    assert_eq!(
        err(r#"{{ template "nope" }}"#, &[]),
        r#"line 1 col 4: no template named "nope""#
    );
}

#[test]
fn literals_strings_numbers_and_printing() {
    assert_eq!(
        ok(r#"{{ "a\tb\n" }}{{ `raw\n` }}{{ 'x' }}"#, &[]),
        "a\tb\nraw\\n120"
    );
    assert_eq!(
        ok(
            "{{ 0x1F }} {{ 1_000 }} {{ -7 }} {{ 1.5 }} {{ 1e6 }} {{ 0.00001 }}",
            &[]
        ),
        "31 1000 -7 1.5 1e+06 1e-05"
    );
    assert_eq!(
        ok(
            r#"{{ list "a" 1 nil true }} {{ dict "b" 2 "a" (list) }}"#,
            &[]
        ),
        "[a 1 <nil> true] map[a:[] b:2]"
    );
    assert_eq!(ok("{{ nil | default nil }}", &[]), "<no value>");
}

#[test]
fn missing_keys_error_but_index_gives_the_zero_value() {
    let p = [("json", r#"{"a":{"b":null}}"#)];
    assert_eq!(
        err("{{ .nope }}", &p),
        r#"line 1 col 4: at <.nope>: map has no entry for key "nope""#
    );
    assert_eq!(
        ok(r#"[{{ index . "nope" }}]"#, &p),
        "[]",
        "the fetched values are strings"
    );
    assert_eq!(
        ok(r#"{{ index (fromJson .json) "x" }}"#, &p),
        "<no value>",
        "decoded JSON maps hold nil"
    );
    assert_eq!(ok("{{ (fromJson .json).a.b }}", &p), "<no value>");
    let e = err("{{ (fromJson .json).a.c }}", &p);
    assert!(e.ends_with(r#"map has no entry for key "c""#), "{e}");
}

#[test]
fn parse_errors_say_where_and_what() {
    assert_eq!(
        err("{{ nosuch .a }}", &[]),
        r#"line 1 col 4: function "nosuch" not defined"#
    );
    assert_eq!(err("x\n  {{ .a ", &[]), "line 2 col 5: unclosed action");
    assert_eq!(err("{{ end }}", &[]), "line 1 col 10: unexpected {{end}}");
    assert_eq!(
        err("{{ range .a }}{{ end }}{{ break }}", &[]),
        "line 1 col 27: {{break}} outside {{range}}"
    );
    assert_eq!(err("{{ }}", &[]), "line 1 col 4: missing value for command");
    assert_eq!(
        err(r#"{{ "unterminated }}"#, &[]),
        "line 1 col 4: unterminated quoted string"
    );
    assert_eq!(err("{{/* open", &[]), "line 1 col 1: unclosed comment");
}

#[test]
fn runaway_templates_stop_with_an_error() {
    let e = err("{{ range 100000000 }}{{ end }}", &[]);
    assert!(e.contains("range over more than"), "{e}");
    let e = err(
        "{{ $l := list }}{{ range 5000 }}{{ $l = append $l 1 }}{{ end }}",
        &[],
    );
    assert!(e.contains("more than 10000000 steps of work"), "{e}");
    let t = "{{ $l := list }}{{ range 150 }}{{ $l = list $l }}{{ end }}{{ len (print $l) }}";
    assert_eq!(
        ok(t, &[]),
        "205",
        "deep nesting prints as [...] past 100 levels"
    );
    let e = err("{{ $d := dict }}{{ $_ := set $d \"me\" (list $d) }}", &[]);
    assert!(e.ends_with("set: a map cannot be set inside itself"), "{e}");
    let e = err(
        r#"{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}"#,
        &[],
    );
    assert!(e.contains("nest deeper than 100"), "{e}");
    let e = err(r#"{{ repeat 100000000 "ab" }}"#, &[]);
    assert!(e.contains("larger than 8 MiB"), "{e}");
    let e = err(r#"{{ range 20 }}{{ repeat 1000000 "x" }}{{ end }}"#, &[]);
    assert!(e.contains("the output is larger than 8 MiB"), "{e}");
}

#[test]
fn error_messages_never_contain_values() {
    let secret = "hunter2-s3cr3t";
    let p = [("pw", secret), ("json", r#"{"k":"hunter2-s3cr3t"}"#)];
    let failing = [
        "{{ .pw.x }}",
        "{{ eq .pw 1 }}",
        "{{ lt .pw (list) }}",
        "{{ index .pw 99 }}",
        "{{ index (fromJson .json) 3 }}",
        r#"{{ printf "%d" .pw }}"#,
        r#"{{ printf "%s %s" .pw }}"#,
        "{{ .pw | mustFromJson }}",
        "{{ .pw | b64dec }}",
        "{{ indent .pw .pw }}",
        r#"{{ regexMatch (printf "(%s" .pw) .pw }}"#,
        "{{ range .pw }}{{ end }}",
        "{{ required .pw .nope }}",
        "{{ ternary 1 2 .pw }}",
        r#"{{ htpasswd (printf "%s:" .pw) .pw }}"#,
        "{{ htpasswd .pw (repeat 9 .pw) }}",
        "{{ set .pw .pw .pw }}",
        "{{ .pw | upper 1 }}",
        "{{ len 5 | print .pw | len | printf \"%q\" | upper 2 }}",
    ];
    for t in failing {
        let e = err(t, &p);
        assert!(!e.contains("hunter2"), "{t}: {e}");
    }
}

#[test]
fn eso_multiline_config_and_replace() {
    let t = "datasources:\n- name: Graphite\n  url: http://localhost:8080\n  password: \"{{ .password }}\"\n  user: \"{{ .user }}\"\n";
    let p = [
        ("user", "admin"),
        ("password", "pw"),
        ("dburl", "postgres://db/app"),
    ];
    assert_eq!(
        ok(t, &p),
        "datasources:\n- name: Graphite\n  url: http://localhost:8080\n  password: \"pw\"\n  user: \"admin\"\n"
    );
    let t = r#"{{ .dburl | replace "postgres://" "postgresql://" }}"#;
    assert_eq!(ok(t, &p), "postgresql://db/app");
}

#[test]
fn eso_templatefrom_literal_htpasswd_list() {
    let t = "{{- $creds := list }}\n{{- range $user, $pw := . }}\n  {{- $creds = append $creds (printf \"%s\" (htpasswd $user $pw \"bcrypt\")) }}\n{{- end }}\nauth: {{ $creds | join \"\\n\" | quote }}\n";
    let out = ok(t, &[("alice", "pw-a"), ("bob", "pw-b")]);
    let doc: BTreeMap<String, String> = serde_yaml::from_str(&out).unwrap();
    let lines: Vec<&str> = doc["auth"].lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, (user, pw)) in lines.iter().zip([("alice", "pw-a"), ("bob", "pw-b")]) {
        let hash = line.strip_prefix(&format!("{user}:")).unwrap();
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(bcrypt::verify(pw, hash).unwrap());
    }
}

#[test]
fn eso_ecr_dockerconfigjson_and_annotations() {
    let t = "{\n  \"auths\": {\n    \"{{ .proxy_endpoint | replace \"https://\" \"\" }}\": {\n      \"username\": \"{{ .username }}\",\n      \"password\": \"{{ .password }}\",\n      \"auth\": \"{{ printf \"%s:%s\" .username .password | b64enc }}\"\n    }\n  }\n}\n";
    let p = [
        ("proxy_endpoint", "https://1.dkr.ecr.example"),
        ("username", "AWS"),
        ("password", "tok"),
        ("expires_at", "1700000000"),
    ];
    let cfg: serde_json::Value = serde_json::from_str(&ok(t, &p)).unwrap();
    let entry = &cfg["auths"]["1.dkr.ecr.example"];
    assert_eq!(entry["username"], "AWS");
    assert_eq!(entry["auth"], "QVdTOnRvaw==");
    assert_eq!(ok("{{ .expires_at }}", &p), "1700000000");
}

#[test]
fn eso_argocd_github_app_keys() {
    let p = [
        ("repoURL", "https://github.com/o"),
        ("appId", "1"),
        ("privateKey", "-----BEGIN KEY-----\nabc\n"),
    ];
    assert_eq!(ok("{{ .repoURL }}", &p), "https://github.com/o");
    assert_eq!(ok("{{ .appId }}", &p), "1");
    assert_eq!(ok("{{ .privateKey }}", &p), "-----BEGIN KEY-----\nabc\n");
    assert_eq!(
        ok("git", &p),
        "git",
        "a template without actions is literal text"
    );
}

#[test]
fn eso_alertmanager_yaml_with_quoted_values() {
    let t = "global:\n  smtp_from: '{{ .alert_email_from }}'\n  smtp_auth_password: '{{ .resend_api_key }}'\n  # a comment in the text\nreceivers:\n  - name: 'Critical'\n    email_configs:\n      - to: '{{ .alert_email_to }}'\n        send_resolved: true\n";
    let p = [
        ("alert_email_from", "a@x.example"),
        ("resend_api_key", "re_123"),
        ("alert_email_to", "b@x.example"),
    ];
    let doc: serde_yaml::Value = serde_yaml::from_str(&ok(t, &p)).unwrap();
    assert_eq!(doc["global"]["smtp_auth_password"], "re_123");
    assert_eq!(doc["receivers"][0]["email_configs"][0]["to"], "b@x.example");
    let e = err("text\n# {{ }} in a comment\n", &p);
    assert_eq!(
        e, "line 2 col 6: missing value for command",
        "braces in YAML comments are actions"
    );
}

#[test]
fn eso_dockerconfigjson_to_string() {
    let cfg = r#"{"auths":{"r":{"auth":"eDp5"}}}"#;
    assert_eq!(
        ok("{{ .pullsecret | toString }}", &[("pullsecret", cfg)]),
        cfg
    );
}
