//! Which objects use which AWS identity, so that the source and version watcher of an identity
//! nobody uses any more are freed (stores come and go on long-lived clusters).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::source::Identity;

/// Object uid → the identity it last used, and, per kind, the uids its cache holds.
#[derive(Default)]
pub struct IdentityUsers {
    users: Mutex<HashMap<String, Identity>>,
    live: Mutex<HashMap<&'static str, HashSet<String>>>,
}

impl IdentityUsers {
    /// Object `uid` (an ExternalSecret or a store) uses `identity` now.
    pub fn uses(&self, uid: &str, identity: &Identity) {
        self.users
            .lock()
            .expect("users lock")
            .insert(uid.to_string(), identity.clone());
    }

    /// Object `uid` no longer resolves to any identity (its store is gone or refused).
    pub fn stops_using(&self, uid: &str) {
        self.users.lock().expect("users lock").remove(uid);
    }

    /// The uids of `kind` that exist now (from that kind's cache).
    pub fn live(&self, kind: &'static str, uids: HashSet<String>) {
        self.live.lock().expect("live lock").insert(kind, uids);
    }

    /// The identities still in use, once each of `kinds` has reported what exists; objects that
    /// no longer exist are forgotten. None until every kind has reported once.
    pub fn in_use(&self, kinds: &[&'static str]) -> Option<Vec<Identity>> {
        let live = self.live.lock().expect("live lock");
        if !kinds.iter().all(|k| live.contains_key(k)) {
            return None;
        }
        let mut users = self.users.lock().expect("users lock");
        users.retain(|uid, _| live.values().any(|uids| uids.contains(uid)));
        let distinct: HashSet<&Identity> = users.values().collect();
        Some(distinct.into_iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(region: &str) -> Identity {
        Identity {
            region: region.into(),
            endpoints: Default::default(),
            static_keys: None,
            web_identity: None,
            roles: vec![],
            retry: None,
        }
    }

    #[test]
    fn identities_are_in_use_while_an_existing_object_uses_them() {
        let users = IdentityUsers::default();
        let (east, west) = (identity("us-east-1"), identity("eu-west-1"));
        users.uses("es-1", &east);
        users.uses("store-1", &east);
        users.uses("es-2", &west);
        let kinds = ["ExternalSecret", "SecretStore"];
        users.live(
            "ExternalSecret",
            HashSet::from(["es-1".into(), "es-2".into()]),
        );
        assert_eq!(users.in_use(&kinds), None, "stores have not reported yet");
        users.live("SecretStore", HashSet::from(["store-1".into()]));
        assert_eq!(users.in_use(&kinds).unwrap().len(), 2);

        // es-2 is deleted: west is no longer used. east is still used by its store alone.
        users.live("ExternalSecret", HashSet::from(["es-1".into()]));
        assert_eq!(users.in_use(&kinds).unwrap(), vec![east.clone()]);
        users.stops_using("es-1");
        assert_eq!(users.in_use(&kinds).unwrap(), vec![east]);
        users.live("SecretStore", HashSet::new());
        assert!(users.in_use(&kinds).unwrap().is_empty());
    }
}
