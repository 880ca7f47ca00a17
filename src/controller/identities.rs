//! Which objects use which AWS identity, so that the source and version watcher of an identity
//! nobody uses any more are freed (stores come and go on long-lived clusters).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::source::Identity;

/// Object uid → the fingerprint of the identity it last used (each identity kept once, however
/// many objects use it), and, per kind, the uids its cache holds (as hashes: 8 bytes rather than
/// a string each; two uids with one hash would only keep an unused identity a while longer).
#[derive(Default)]
pub struct IdentityUsers {
    users: Mutex<Users>,
    live: Mutex<HashMap<&'static str, HashSet<u64>>>,
}

#[derive(Default)]
struct Users {
    by_uid: HashMap<String, [u8; 32]>,
    identities: HashMap<[u8; 32], Identity>,
}

impl IdentityUsers {
    /// Object `uid` (an ExternalSecret or a store) uses `identity` now.
    pub fn uses(&self, uid: &str, identity: &Identity) {
        let fingerprint = identity.fingerprint();
        let mut users = self.users.lock().expect("users lock");
        if users.by_uid.get(uid) != Some(&fingerprint) {
            users.by_uid.insert(uid.to_string(), fingerprint);
        }
        users
            .identities
            .entry(fingerprint)
            .or_insert_with(|| identity.clone());
    }

    /// Object `uid` no longer resolves to any identity (its store is gone or refused).
    pub fn stops_using(&self, uid: &str) {
        self.users.lock().expect("users lock").by_uid.remove(uid);
    }

    /// The uids of `kind` that exist now (from that kind's cache).
    pub fn live(&self, kind: &'static str, uids: HashSet<String>) {
        let hashes = uids.iter().map(|u| uid_hash(u)).collect();
        self.live.lock().expect("live lock").insert(kind, hashes);
    }

    /// The identities still in use, once each of `kinds` has reported what exists; objects that
    /// no longer exist are forgotten. None until every kind has reported once.
    pub fn in_use(&self, kinds: &[&'static str]) -> Option<Vec<Identity>> {
        let live = self.live.lock().expect("live lock");
        if !kinds.iter().all(|k| live.contains_key(k)) {
            return None;
        }
        let mut users = self.users.lock().expect("users lock");
        users
            .by_uid
            .retain(|uid, _| live.values().any(|uids| uids.contains(&uid_hash(uid))));
        let used: HashSet<[u8; 32]> = users.by_uid.values().copied().collect();
        users.identities.retain(|f, _| used.contains(f));
        Some(users.identities.values().cloned().collect())
    }
}

fn uid_hash(uid: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(region: &str) -> Identity {
        Identity {
            region: region.into(),
            failover_regions: vec![],
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
