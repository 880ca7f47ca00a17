//! One test per function, with real outputs and sprig's argument order in pipelines.

use super::tests::run;

const ROOT: &[(&str, &str)] = &[
    ("user", "alice"),
    ("pass", "s3cret"),
    ("url", "postgres://db:5432/app"),
    ("json", r#"{"a":{"b":"deep"},"n":5432,"l":[1,2]}"#),
    ("yaml", "a:\n  b: deep\nn: 7\n"),
    ("csv", "a,b,c"),
    ("empty", ""),
    ("num", "42"),
    ("multi", "l1\nl2"),
];

#[track_caller]
fn check(t: &str, want: &str) {
    match run(t, ROOT) {
        Ok(got) => assert_eq!(got, want, "{t}"),
        Err(e) => panic!("{t}: {e}"),
    }
}

#[track_caller]
fn fails(t: &str, want_in_error: &str) {
    match run(t, ROOT) {
        Ok(got) => panic!("{t} rendered {got:?}"),
        Err(e) => assert!(e.contains(want_in_error), "{t}: {e}"),
    }
}

#[test]
fn and_or_not() {
    check(
        r#"{{ and .user .empty }}|{{ or .empty .user }}|{{ not .empty }}"#,
        "|alice|true",
    );
}

#[test]
fn eq_ne_lt_le_gt_ge() {
    check(
        r#"{{ eq .user "bob" "alice" }} {{ ne .user "alice" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2 }}"#,
        "true false true true true false",
    );
    fails(
        r#"{{ eq .num 42 }}"#,
        "eq: incompatible types for comparison: string and int",
    );
    fails(
        r#"{{ lt true false }}"#,
        "invalid type for comparison: bool",
    );
}

#[test]
fn len_index_slice() {
    check(
        r#"{{ len .user }} {{ len (list 1 2) }} {{ index (fromJson .json) "a" "b" }} {{ index (list "x" "y") 1 }}"#,
        "5 2 deep y",
    );
    check(
        r#"{{ slice .user 1 3 }} {{ slice (list 1 2 3) 1 }}"#,
        "li [2 3]",
    );
    fails(
        r#"{{ index (list 1) 5 }}"#,
        "index: argument 2 is out of range",
    );
}

#[test]
fn print_printf_println() {
    check(
        r#"{{ print "a" 1 2 "b" }}|{{ println "a" 1 }}|"#,
        "a1 2b|a 1\n|",
    );
    check(r#"{{ printf "%s:%s" .user .pass }}"#, "alice:s3cret");
    check(
        r#"{{ printf "%05d|%-4s|%x|%q|%.2f|%v|%t|%5.1f|%+d" 42 "ab" 255 "a\"b" 3.14159 (list 1 2) true 2.25 3 }}"#,
        "00042|ab  |ff|\"a\\\"b\"|3.14|[1 2]|true|  2.2|+3",
    );
    fails(
        r#"{{ printf "%d" .user }}"#,
        "printf: %d cannot format a string",
    );
    fails(
        r#"{{ printf "%s %s" .user }}"#,
        "more verbs than the 1 arguments",
    );
}

#[test]
fn urlquery() {
    check(r#"{{ urlquery "a b&c=d/é" }}"#, "a+b%26c%3Dd%2F%C3%A9");
}

#[test]
fn to_string() {
    check(
        r#"{{ 42 | toString }} {{ toString .user }} {{ toString (list 1 "a") }}"#,
        "42 alice [1 a]",
    );
}

#[test]
fn to_json_escapes_html_like_go() {
    check(
        r#"{{ toJson (dict "a" "<&>" "b" (list 1 true nil)) }}"#,
        r#"{"a":"\u003c\u0026\u003e","b":[1,true,null]}"#,
    );
    check(r#"{{ toRawJson (dict "a" "<&>") }}"#, r#"{"a":"<&>"}"#);
    check(r#"{{ toPrettyJson (dict "a" 1) }}"#, "{\n  \"a\": 1\n}");
    check(r#"{{ .user | toJson }}"#, r#""alice""#);
}

#[test]
fn from_json() {
    check(
        r#"{{ (fromJson .json).a.b }} {{ (.json | fromJson).n }} {{ index (fromJson .json).l 1 }}"#,
        "deep 5432 2",
    );
    check(r#"{{ fromJson "not json" }}"#, "<no value>");
    fails(
        r#"{{ mustFromJson "{" }}"#,
        "mustFromJson: the input is not valid JSON (line 1 column 1)",
    );
}

#[test]
fn b64enc_b64dec() {
    check(
        r#"{{ "hi" | b64enc }} {{ "aGk=" | b64dec }} {{ .pass | b64enc | b64dec }}"#,
        "aGk= hi s3cret",
    );
    fails(
        r#"{{ "!!" | b64dec }}"#,
        "b64dec: the input is not valid base64",
    );
}

#[test]
fn quote_squote() {
    check(
        r#"{{ quote .user 5 nil }} {{ .multi | quote }} {{ squote .user }}"#,
        r#""alice" "5" "l1\nl2" 'alice'"#,
    );
}

#[test]
fn indent_nindent() {
    check(r#"{{ .multi | indent 2 }}"#, "  l1\n  l2");
    check(r#"x:{{ .multi | nindent 4 }}"#, "x:\n    l1\n    l2");
}

#[test]
fn replace() {
    check(
        r#"{{ .url | replace "postgres://" "postgresql://" }}"#,
        "postgresql://db:5432/app",
    );
}

#[test]
fn trim_trim_all_prefix_suffix() {
    check(
        r#"[{{ trim "  x \n" }}] {{ trimAll "$" "$$5$" }} {{ trimPrefix "postgres://" .url }} {{ .url | trimSuffix "/app" }}"#,
        "[x] 5 db:5432/app postgres://db:5432",
    );
}

#[test]
fn upper_lower_title_nospace() {
    check(
        r#"{{ upper .user }} {{ lower "AbC" }} {{ title "hello world-foo bar_baz" }} {{ nospace "a b\tc" }}"#,
        "ALICE abc Hello World-Foo Bar_baz abc",
    );
}

#[test]
fn default_in_pipelines() {
    check(
        r#"{{ .empty | default "fallback" }} {{ .user | default "x" }} {{ default "d" }} {{ index . "nope" | default "y" }}"#,
        "fallback alice d y",
    );
}

#[test]
fn empty() {
    check(
        r#"{{ empty .empty }} {{ empty (list) }} {{ empty 0 }} {{ empty .user }} {{ empty nil }}"#,
        "true true true false true",
    );
}

#[test]
fn list_append_push_first_last_has() {
    check(
        r#"{{ join "," (append (list "a" "b") "c") }} {{ push (list) 1 }} {{ first (list 1 2) }} {{ last (list 1 2) }} {{ has 2 (list 1 2) }}"#,
        "a,b,c [1] 1 2 true",
    );
    fails(
        r#"{{ append .user "x" }}"#,
        "append: argument 1 must be a list, got string",
    );
}

#[test]
fn join_skips_nil_and_accepts_a_single_value() {
    check(
        r#"{{ list "a" nil 3 | join "-" }} {{ join "," .user }}"#,
        "a-3 alice",
    );
}

#[test]
fn dict_get_set_unset_has_key_keys_values() {
    check(
        r#"{{ (dict "k" "v" "n" 1).k }} [{{ (dict "a").a }}] {{ get . "user" }} [{{ get (dict) "x" }}]"#,
        "v [] alice []",
    );
    check(
        r#"{{ $d := dict "a" "1" }}{{ $_ := set $d "b" "2" }}{{ $_ := unset $d "a" }}{{ keys $d }} {{ hasKey $d "b" }} {{ hasKey . "nope" }}"#,
        "[b] true false",
    );
    check(
        r#"{{ keys (dict "b" 1 "a" 2) (dict "c" 3) }} {{ values (dict "b" 1 "a" 2) }}"#,
        "[a b c] [2 1]",
    );
}

#[test]
fn split_gives_a_map_and_split_list_a_list() {
    check(
        r#"{{ (split "," .csv)._1 }} {{ index (splitList "," .csv) 2 }} {{ len (splitList "," .csv) }}"#,
        "b c 3",
    );
    check(
        r#"{{ $parts := split "://" .url }}{{ $parts._0 }}|{{ $parts._1 }}"#,
        "postgres|db:5432/app",
    );
}

#[test]
fn contains_has_prefix_has_suffix() {
    check(
        r#"{{ contains "db" .url }} {{ hasPrefix "postgres" .url }} {{ .url | hasSuffix "/app" }} {{ contains "x" .url }}"#,
        "true true true false",
    );
}

#[test]
fn sort_alpha() {
    check(r#"{{ sortAlpha (list "b" "a" 1) }}"#, "[1 a b]");
}

#[test]
fn htpasswd_and_bcrypt() {
    let out = run(r#"{{ htpasswd .user .pass }}"#, ROOT).unwrap();
    let hash = out
        .strip_prefix("alice:$2a$10$")
        .map(|_| &out[6..])
        .expect(&out);
    assert!(bcrypt::verify("s3cret", hash).unwrap());
    check(
        r#"{{ htpasswd "u" "p" "sha" }}"#,
        "u:{SHA}UWuXg/ylF+7L0dBk2i0WUxCxl1k=",
    );
    fails(
        r#"{{ htpasswd "a:b" "p" }}"#,
        "htpasswd: the user name must not contain ':'",
    );
}

#[test]
fn sha256sum_sha1sum() {
    check(r#"{{ sha256sum "abc" }} {{ "abc" | sha1sum }}"#, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad a9993e364706816aba3e25717850c26c9cd0d89d");
}

#[test]
fn to_yaml() {
    check(
        r#"{{ toYaml (dict "a" (list 1 2) "b" "x") }}"#,
        "a:\n- 1\n- 2\nb: x",
    );
    check(
        r#"{{ (fromJson .json).a | toYaml | nindent 2 }}"#,
        "\n  b: deep",
    );
}

#[test]
fn from_yaml() {
    check(
        r#"{{ (fromYaml .yaml).a.b }} {{ (fromYaml .yaml).n }}"#,
        "deep 7",
    );
    check(
        r#"{{ (fromYaml "- a").Error }}"#,
        "the YAML document is not a mapping",
    );
    check(
        r#"{{ (fromYaml "a: [").Error }}"#,
        "invalid YAML at line 2 column 1",
    );
}

#[test]
fn ternary() {
    check(
        r#"{{ ternary "y" "n" (eq .user "alice") }} {{ false | ternary "a" "b" }}"#,
        "y b",
    );
    fails(
        r#"{{ ternary 1 2 "true" }}"#,
        "ternary: argument 3 must be a bool, got string",
    );
}

#[test]
fn coalesce() {
    check(
        r#"{{ coalesce .empty "" "z" }} {{ coalesce nil }}"#,
        "z <no value>",
    );
}

#[test]
fn required_and_fail_report_the_templates_own_message() {
    check(r#"{{ required "need pass" .pass }}"#, "s3cret");
    fails(
        r#"{{ required "pass is required" .empty }}"#,
        "required: pass is required",
    );
    fails(r#"{{ fail "stop here" }}"#, "fail: stop here");
}

#[test]
fn int_int64_float64_atoi() {
    check(
        r#"{{ int "42" }} {{ int "0x10" }} {{ int "4.0" }} {{ int "abc" }} {{ int 3.9 }} {{ int64 .num }} {{ float64 "1.5" }} {{ atoi .num }} {{ atoi "4x" }}"#,
        "42 16 4 0 3 42 1.5 42 0",
    );
}

#[test]
fn integer_math() {
    check(
        r#"{{ add 1 2 3 }} {{ add1 .num }} {{ sub 5 7 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 9 3 }} {{ min 4 2 }}"#,
        "6 43 -2 24 3 1 9 2",
    );
    fails("{{ div 1 0 }}", "div: division by zero");
}

#[test]
fn substr_trunc_repeat_cat() {
    check(
        r#"{{ substr 0 5 "hello world" }} {{ substr 6 -1 "hello world" }} {{ trunc 3 "hello" }} {{ trunc -2 "hello" }} {{ repeat 3 "ab" }} {{ cat "a" nil 1 "b" }}"#,
        "hello world hel lo ababab a 1 b",
    );
}

#[test]
fn regex_functions() {
    check(
        r#"{{ regexMatch "^[a-z]+$" .user }} {{ regexFind "[0-9]+" .url }} {{ regexFindAll "[a-c]" "abcabc" 4 }}"#,
        "true 5432 [a b c a]",
    );
    check(
        r#"{{ regexReplaceAll "(\\w+)@" "bob@x" "${1}-at-" }} {{ regexReplaceAllLiteral "o" "foo" "$1" }}"#,
        "bob-at-x f$1$1",
    );
    fails(
        r#"{{ regexMatch "(" .user }}"#,
        "regexMatch: argument 1 is not a valid regular expression",
    );
}

#[test]
fn wrong_argument_counts_and_types_are_clear() {
    fails("{{ upper }}", "upper: wants 1 argument, got 0");
    fails(
        "{{ upper 1 }}",
        "upper: argument 1 must be a string, got int",
    );
    fails(
        r#"{{ indent "2" .user }}"#,
        "indent: argument 1 must be an integer, got string",
    );
}

#[test]
fn filter_pem_keeps_blocks_of_one_type() {
    let body = "MIIBszCCAVmgAwIBAgIUQk5QZ3p6dGVzdGNlcnRpZmljYXRlYm9keWZvcnRlc3RzMDAwMDAwMDAwMDAwMDAwMDAwMDAw";
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n{}\n{}\n-----END CERTIFICATE-----\n",
        &body[..40],
        &body[40..]
    );
    let got =
        super::tests::run(r#"{{ .pem | filterPEM "certificate" }}"#, &[("pem", &pem)]).unwrap();
    assert_eq!(
        got,
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n{}\n-----END CERTIFICATE-----\n",
            &body[..64],
            &body[64..]
        )
    );
    let e = super::tests::run(r#"{{ filterPEM "CERTIFICATE" "junk" }}"#, &[]).unwrap_err();
    assert!(
        e.ends_with("filterPEM: the input holds no PEM block of that type, only other text"),
        "{e}"
    );
}
