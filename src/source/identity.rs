//! Who reads from AWS: region, endpoints, base credentials (the operator's own, static keys, or
//! a ServiceAccount's web identity) and the roles assumed on top. One
//! [`super::aws::AwsSource`] exists per distinct identity.

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

use crate::api::Endpoints;

/// Static access keys, read by the controller from a Kubernetes Secret. `Debug` shows the
/// access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Base credentials from a Kubernetes ServiceAccount: a token is requested for it (TokenRequest
/// API) and exchanged with sts:AssumeRoleWithWebIdentity for `role_arn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentity {
    pub namespace: String,
    pub service_account: String,
    /// The token's audiences. Empty: `sts.amazonaws.com`.
    pub audiences: Vec<String>,
    pub role_arn: String,
}

/// One sts:AssumeRole step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssumeRole {
    pub arn: String,
    pub external_id: Option<String>,
    /// Default: `arnsync`.
    pub session_name: Option<String>,
    pub session_tags: Vec<SessionTag>,
    /// Keys of `session_tags` that pass on to roles assumed from this session.
    pub transitive_tag_keys: Vec<String>,
}

/// A session tag of an assumed role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTag {
    pub key: String,
    pub value: String,
}

/// Everything that decides which AWS principal reads, and where from.
///
/// The base credentials are `web_identity` when set, else `static_keys` when set, else the
/// operator's own (the SDK default chain); set at most one of the two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub region: String,
    /// Secrets Manager replica regions read, in order, while `region` is unavailable.
    pub failover_regions: Vec<String>,
    pub endpoints: Endpoints,
    pub static_keys: Option<StaticKeys>,
    pub web_identity: Option<WebIdentity>,
    /// Roles assumed in order on top of the base credentials (ESO: additionalRoles, then role).
    pub roles: Vec<AssumeRole>,
    /// The store's `retrySettings`; `None`: the operator's `--aws-max-attempts`.
    pub retry: Option<Retry>,
}

/// How an identity's AWS calls are retried (standard mode: exponential backoff with jitter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first backoff; later ones grow exponentially. `None`: the SDK's default.
    pub initial_backoff: Option<std::time::Duration>,
}

/// Feeds an identity into a digest so that no two different identities encode alike: every
/// value is tagged and length-prefixed, every list count-prefixed.
struct Encoder(Sha256);

impl Encoder {
    fn value(&mut self, tag: u8, value: Option<&str>) {
        self.0.update([tag]);
        match value {
            Some(v) => {
                self.0.update([1]);
                self.0.update((v.len() as u64).to_be_bytes());
                self.0.update(v.as_bytes());
            }
            None => self.0.update([0]),
        }
    }

    fn count(&mut self, tag: u8, n: usize) {
        self.0.update([tag]);
        self.0.update((n as u64).to_be_bytes());
    }
}

impl Identity {
    /// A digest of every field, used as the registry key so the registry does not hold a second
    /// copy of secret key material.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut e = Encoder(Sha256::new());
        e.value(b'r', Some(&self.region));
        e.count(b'F', self.failover_regions.len());
        for region in &self.failover_regions {
            e.value(b'f', Some(region));
        }
        e.value(b'm', self.endpoints.secrets_manager.as_deref());
        e.value(b's', self.endpoints.ssm.as_deref());
        e.value(b't', self.endpoints.sts.as_deref());
        e.value(b'q', self.endpoints.sqs.as_deref());
        let keys = self.static_keys.as_ref();
        e.count(b'S', keys.map_or(0, |_| 1));
        if let Some(k) = keys {
            e.value(b'a', Some(&k.access_key_id));
            e.value(b'k', Some(&k.secret_access_key));
            e.value(b'o', k.session_token.as_deref());
        }
        let web = self.web_identity.as_ref();
        e.count(b'W', web.map_or(0, |_| 1));
        if let Some(w) = web {
            e.value(b'N', Some(&w.namespace));
            e.value(b'A', Some(&w.service_account));
            e.count(b'U', w.audiences.len());
            for audience in &w.audiences {
                e.value(b'u', Some(audience));
            }
            e.value(b'w', Some(&w.role_arn));
        }
        e.count(b'Y', self.retry.map_or(0, |_| 1));
        if let Some(r) = self.retry {
            e.value(b'y', Some(&r.max_attempts.to_string()));
            e.value(
                b'b',
                r.initial_backoff
                    .map(|d| d.as_millis().to_string())
                    .as_deref(),
            );
        }
        e.count(b'L', self.roles.len());
        for role in &self.roles {
            e.value(b'R', Some(&role.arn));
            e.value(b'x', role.external_id.as_deref());
            e.value(b'n', role.session_name.as_deref());
            e.count(b'T', role.session_tags.len());
            for tag in &role.session_tags {
                e.value(b'K', Some(&tag.key));
                e.value(b'V', Some(&tag.value));
            }
            e.count(b'I', role.transitive_tag_keys.len());
            for key in &role.transitive_tag_keys {
                e.value(b'i', Some(key));
            }
        }
        e.0.finalize().into()
    }
}

impl Identity {
    /// A short hash of [`Identity::fingerprint`]: how metrics and store status name an
    /// identity (16 hex digits; it reveals nothing of the keys it covers).
    pub fn short_id(&self) -> String {
        short_id_of(&self.fingerprint())
    }
}

/// The short id of the identity with this [`Identity::fingerprint`].
pub fn short_id_of(fingerprint: &[u8; 32]) -> String {
    hex::encode(&fingerprint[..8])
}

impl Hash for Identity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> StaticKeys {
        StaticKeys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: secret.into(),
            session_token: Some("tok-secret".into()),
        }
    }

    fn identity() -> Identity {
        Identity {
            region: "eu-west-1".into(),
            failover_regions: vec![],
            endpoints: Endpoints::default(),
            static_keys: Some(keys("s3cr3t")),
            web_identity: None,
            roles: vec![],
            retry: None,
        }
    }

    fn role(arn: &str) -> AssumeRole {
        AssumeRole {
            arn: arn.into(),
            session_tags: vec![SessionTag {
                key: "team".into(),
                value: "pay".into(),
            }],
            ..AssumeRole::default()
        }
    }

    fn web() -> WebIdentity {
        WebIdentity {
            namespace: "team-a".into(),
            service_account: "reader".into(),
            audiences: vec!["sts.amazonaws.com".into()],
            role_arn: "arn:aws:iam::123456789012:role/web".into(),
        }
    }

    #[test]
    fn static_keys_debug_is_redacted() {
        let shown = format!("{:?}", identity());
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("tok-secret"), "{shown}");
    }

    /// Every field, changed alone, gives another fingerprint.
    #[test]
    fn fingerprint_covers_every_field() {
        let base = Identity {
            static_keys: None,
            web_identity: Some(web()),
            roles: vec![role("arn:aws:iam::1:role/a")],
            retry: None,
            ..identity()
        };
        type Change = (&'static str, fn(&mut Identity));
        let changes: Vec<Change> = vec![
            ("region", |i| i.region = "us-east-1".into()),
            ("failover region", |i| {
                i.failover_regions = vec!["us-west-2".into()]
            }),
            ("second failover region", |i| {
                i.failover_regions = vec!["us-west-2".into(), "eu-west-1".into()]
            }),
            ("sm endpoint", |i| {
                i.endpoints.secrets_manager = Some("http://127.0.0.1:1".into())
            }),
            ("ssm endpoint", |i| {
                i.endpoints.ssm = Some("http://127.0.0.1:1".into())
            }),
            ("sts endpoint", |i| {
                i.endpoints.sts = Some("http://127.0.0.1:1".into())
            }),
            ("static keys", |i| i.static_keys = Some(keys("s3cr3t"))),
            ("no web identity", |i| i.web_identity = None),
            ("namespace", |i| {
                i.web_identity.as_mut().unwrap().namespace = "team-b".into()
            }),
            ("service account", |i| {
                i.web_identity.as_mut().unwrap().service_account = "writer".into()
            }),
            ("audiences", |i| {
                i.web_identity
                    .as_mut()
                    .unwrap()
                    .audiences
                    .push("api".into())
            }),
            ("no audiences", |i| {
                i.web_identity.as_mut().unwrap().audiences.clear()
            }),
            ("web role", |i| {
                i.web_identity.as_mut().unwrap().role_arn = "arn:aws:iam::1:role/x".into()
            }),
            ("role arn", |i| {
                i.roles[0].arn = "arn:aws:iam::1:role/b".into()
            }),
            ("external id", |i| i.roles[0].external_id = Some("e".into())),
            ("session name", |i| {
                i.roles[0].session_name = Some("s".into())
            }),
            ("tag value", |i| {
                i.roles[0].session_tags[0].value = "ops".into()
            }),
            ("tag key", |i| {
                i.roles[0].session_tags[0].key = "unit".into()
            }),
            ("transitive keys", |i| {
                i.roles[0].transitive_tag_keys = vec!["team".into()]
            }),
            ("second role", |i| {
                i.roles.push(role("arn:aws:iam::1:role/c"))
            }),
            ("no roles", |i| i.roles.clear()),
        ];
        let mut seen = vec![base.fingerprint()];
        assert_eq!(base.fingerprint(), base.clone().fingerprint());
        for (what, change) in changes {
            let mut changed = base.clone();
            change(&mut changed);
            let fp = changed.fingerprint();
            assert!(!seen.contains(&fp), "changing {what} kept a fingerprint");
            seen.push(fp);
        }
    }

    #[test]
    fn fingerprint_tells_rotated_keys_apart() {
        let mut rotated = identity();
        rotated.static_keys = Some(keys("other"));
        assert_ne!(identity().fingerprint(), rotated.fingerprint());
    }

    /// The same values in a different arrangement (a tag moved to the next role, an audience
    /// split in two) are another identity.
    #[test]
    fn fingerprint_is_unambiguous() {
        let mut one = identity();
        one.roles = vec![role("a"), AssumeRole::default()];
        let mut two = identity();
        two.roles = vec![AssumeRole {
            session_tags: vec![],
            ..role("a")
        }];
        two.roles.push(AssumeRole {
            session_tags: role("a").session_tags,
            ..AssumeRole::default()
        });
        assert_ne!(one.fingerprint(), two.fingerprint());
        let with = |audiences: &[&str]| Identity {
            web_identity: Some(WebIdentity {
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
                ..web()
            }),
            ..identity()
        };
        assert_ne!(with(&["ab"]).fingerprint(), with(&["a", "b"]).fingerprint());
    }
}
