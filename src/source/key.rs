//! How a key written in a remoteRef (a name, a full ARN, a secret ARN without its random suffix,
//! `name:label`) relates to the names and ARNs AWS reports: the one place that knows ARN shapes.

/// True when `key` names the secret or parameter AWS reports as `name` (and `arn`, when the
/// answer carried it). With an ARN the match is exact up to a secret ARN's random 6-character
/// suffix (`-AbCdEf`), which a key may leave out; without one, an ARN key matches by its tail.
pub fn refers_to(key: &str, name: &str, arn: Option<&str>) -> bool {
    if key == name {
        return true;
    }
    if !key.starts_with("arn:") {
        return false;
    }
    if let Some(arn) = arn {
        return key == arn || (arn.starts_with(key) && arn.len() == key.len() + 7);
    }
    let secret = format!(":secret:{name}");
    // A parameter ARN ends with `parameter` + the name (with its leading `/`).
    key.ends_with(&secret)
        || key
            .rfind(&secret)
            .is_some_and(|i| key.len() == i + secret.len() + 7)
        || key.ends_with(&format!(":parameter{name}"))
        || key.ends_with(&format!(":parameter/{name}"))
}

/// `name:label` → `name` (ARNs contain colons too: only a suffix after the last `/` counts).
pub fn base_name(request: &str) -> &str {
    let tail_start = request.rfind('/').map(|i| i + 1).unwrap_or(0);
    match request[tail_start..].rfind(':') {
        Some(i) if !request.starts_with("arn:") || tail_start > 0 => &request[..tail_start + i],
        _ => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_of_parameter_requests() {
        assert_eq!(base_name("/prod/db/url"), "/prod/db/url");
        assert_eq!(base_name("/prod/db/url:stable"), "/prod/db/url");
        assert_eq!(base_name("plain:3"), "plain");
        assert_eq!(
            base_name("arn:aws:ssm:us-east-1:123456789012:parameter/prod/x:label"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/x"
        );
        assert_eq!(
            base_name("arn:aws:ssm:us-east-1:123456789012:parameter/prod/x"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/x"
        );
    }

    #[test]
    fn arns_refer_to_the_names_aws_reports() {
        let r = |key: &str, name: &str| refers_to(key, name, None);
        assert!(r("prod/db", "prod/db"));
        assert!(r(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            "prod/db"
        ));
        assert!(r(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db",
            "prod/db"
        ));
        assert!(!r(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db2-AbCdEf",
            "prod/db"
        ));
        assert!(r(
            "arn:aws:ssm:us-east-1:123456789012:parameter/prod/url",
            "/prod/url"
        ));
        assert!(r(
            "arn:aws:ssm:us-east-1:123456789012:parameter/plain",
            "plain"
        ));
        assert!(!r("prod/db2", "prod/db"));
    }

    #[test]
    fn a_known_arn_must_match_its_account_and_region() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        let other = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
        assert!(refers_to(other, "prod/db", None));
        assert!(!refers_to(other, "prod/db", Some(arn)));
    }
}
