//! The data hash: sha256 over the Secret's keys and values, order-independent and unambiguous
//! (each part is length-prefixed), so that equal data always gives equal hashes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Hex sha256 over `data`.
pub fn data_hash(data: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = Sha256::new();
    for (k, v) in data {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn equal_data_gives_equal_hash_and_any_change_moves_it() {
        let a = data_hash(&map(&[("user", "app"), ("password", "s3cret")]));
        assert_eq!(
            a,
            data_hash(&map(&[("password", "s3cret"), ("user", "app")]))
        );
        assert_ne!(
            a,
            data_hash(&map(&[("user", "app"), ("password", "s3creT")]))
        );
        assert_ne!(a, data_hash(&map(&[("user", "app")])));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn key_value_boundaries_are_unambiguous() {
        assert_ne!(
            data_hash(&map(&[("ab", "c")])),
            data_hash(&map(&[("a", "bc")]))
        );
    }
}
