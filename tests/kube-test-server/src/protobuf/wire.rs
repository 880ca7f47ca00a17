//! Finds fields prost skipped while decoding: field numbers the k8s-pb (Kubernetes 1.35) messages
//! do not have, e.g. from a newer client. prost keeps no unknown fields, so the original bytes
//! are compared with prost's re-encoding of what it decoded, level by level: a field missing
//! from the re-encoding was skipped, unless it carried only a zero value (Go always encodes
//! non-pointer fields, so a newer client sends its new fields empty; dropping those changes
//! nothing, and prost leaves zero map keys and values out the same way).

use std::collections::BTreeMap;

#[derive(Debug, PartialEq)]
enum Wire<'a> {
    Varint(u64),
    Fixed(&'a [u8]),
    Len(&'a [u8]),
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

/// The fields of one message by number, in wire order; None if it does not parse.
fn fields(mut buf: &[u8]) -> Option<BTreeMap<u64, Vec<Wire<'_>>>> {
    let mut out: BTreeMap<u64, Vec<Wire>> = BTreeMap::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut buf)?),
            1 => Wire::Fixed(take(&mut buf, 8)?),
            2 => {
                let n = usize::try_from(varint(&mut buf)?).ok()?;
                Wire::Len(take(&mut buf, n)?)
            }
            5 => Wire::Fixed(take(&mut buf, 4)?),
            _ => return None,
        };
        out.entry(key >> 3).or_default().push(value);
    }
    Some(out)
}

/// Zero scalars, empty bytes, and messages made only of those.
fn is_zero(w: &Wire) -> bool {
    match w {
        Wire::Varint(v) => *v == 0,
        Wire::Fixed(b) => b.iter().all(|&x| x == 0),
        Wire::Len(b) => {
            b.is_empty() || fields(b).is_some_and(|f| f.values().flatten().all(is_zero))
        }
    }
}

/// The field-number path (`.2.3.2.99`) of the first non-zero field of `original` that
/// `reencoded` lacks.
pub fn skipped(original: &[u8], reencoded: &[u8]) -> Option<String> {
    let mut path = Vec::new();
    if walk(original, reencoded, &mut path) {
        return None;
    }
    Some(path.iter().map(|t| format!(".{t}")).collect())
}

/// False (with `path` pointing at it) when a field was skipped.
fn walk(original: &[u8], reencoded: &[u8], path: &mut Vec<u64>) -> bool {
    let (Some(a), Some(b)) = (fields(original), fields(reencoded)) else {
        // prost parsed `original` already, so only a string that differs could get here.
        return false;
    };
    for (tag, values) in &a {
        let kept = b.get(tag).map(Vec::as_slice).unwrap_or_default();
        path.push(*tag);
        for (i, v) in values.iter().enumerate() {
            let ok = match (v, kept.get(i)) {
                (v, Some(k)) if v == k => true,
                // Strings and bytes come back unchanged: a differing value is a message.
                (Wire::Len(v), Some(Wire::Len(k))) => walk(v, k, path),
                (v, _) => is_zero(v),
            };
            if !ok {
                return false;
            }
        }
        path.pop();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_nonzero_fields_the_reencoding_lacks() {
        // {1: "a", 2: {1: 5, 9: 7}} re-encoded without the nested field 9.
        let original = [0x0a, 0x01, b'a', 0x12, 0x04, 0x08, 0x05, 0x48, 0x07];
        let reencoded = [0x0a, 0x01, b'a', 0x12, 0x02, 0x08, 0x05];
        assert_eq!(skipped(&original, &reencoded).as_deref(), Some(".2.9"));
        assert_eq!(skipped(&original, &original), None);
        // Zero values (an empty string 3, a varint 4 of 0, an empty message 5) may go.
        let zeros = [
            0x0a, 0x01, b'a', 0x1a, 0x00, 0x20, 0x00, 0x2a, 0x02, 0x08, 0x00,
        ];
        assert_eq!(skipped(&zeros, &[0x0a, 0x01, b'a']), None);
    }
}
