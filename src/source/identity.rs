//! Who reads from AWS: region, endpoints, credentials and role. One [`super::aws::AwsSource`]
//! exists per distinct identity.

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

use crate::api::{AssumeRole, Endpoints};

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

/// Everything that decides which AWS principal reads, and where from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub region: String,
    pub endpoints: Endpoints,
    /// `None`: the operator's own credentials (the SDK default chain).
    pub static_keys: Option<StaticKeys>,
    pub role: Option<AssumeRole>,
}

impl Identity {
    /// A digest of every field, used as the registry key so the registry does not hold a second
    /// copy of secret key material. Each field is length-prefixed so that no two different
    /// identities encode alike.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |tag: u8, value: Option<&str>| {
            h.update([tag]);
            match value {
                Some(v) => {
                    h.update([1]);
                    h.update((v.len() as u64).to_be_bytes());
                    h.update(v.as_bytes());
                }
                None => h.update([0]),
            }
        };
        field(b'r', Some(&self.region));
        field(b'm', self.endpoints.secrets_manager.as_deref());
        field(b's', self.endpoints.ssm.as_deref());
        field(b't', self.endpoints.sts.as_deref());
        let keys = self.static_keys.as_ref();
        field(b'a', keys.map(|k| k.access_key_id.as_str()));
        field(b'k', keys.map(|k| k.secret_access_key.as_str()));
        field(b'o', keys.and_then(|k| k.session_token.as_deref()));
        let role = self.role.as_ref();
        field(b'R', role.map(|r| r.arn.as_str()));
        field(b'x', role.and_then(|r| r.external_id.as_deref()));
        field(b'n', role.and_then(|r| r.session_name.as_deref()));
        for tag in role.map(|r| r.session_tags.as_slice()).unwrap_or_default() {
            field(b'K', Some(&tag.key));
            field(b'V', Some(&tag.value));
        }
        h.finalize().into()
    }
}

impl Hash for Identity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SessionTag;

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
            endpoints: Endpoints::default(),
            static_keys: Some(keys("s3cr3t")),
            role: None,
        }
    }

    #[test]
    fn static_keys_debug_is_redacted() {
        let shown = format!("{:?}", identity());
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("tok-secret"), "{shown}");
    }

    #[test]
    fn fingerprint_tells_identities_apart() {
        let a = identity();
        assert_eq!(a.fingerprint(), identity().fingerprint());
        let mut rotated = identity();
        rotated.static_keys = Some(keys("other"));
        assert_ne!(a.fingerprint(), rotated.fingerprint());
        let mut moved = identity();
        moved.endpoints.sts = Some("http://127.0.0.1:1".into());
        assert_ne!(a.fingerprint(), moved.fingerprint());
        let mut tagged = identity();
        tagged.role = Some(AssumeRole {
            arn: "arn:aws:iam::123456789012:role/r".into(),
            session_tags: vec![SessionTag {
                key: "team".into(),
                value: "pay".into(),
            }],
            ..AssumeRole::default()
        });
        let mut retagged = tagged.clone();
        retagged.role.as_mut().unwrap().session_tags[0].value = "ops".into();
        assert_ne!(tagged.fingerprint(), retagged.fingerprint());
        assert_ne!(a.fingerprint(), tagged.fingerprint());
    }
}
