//! Kafka's textual form of a UUID (cluster ids, topic ids, directory ids): 16 random bytes
//! in URL-safe base64 without padding, 22 characters — what `kafka-storage random-uuid` prints.

use uuid::Uuid;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A fresh random id. Kafka avoids ids whose text starts with '-' (they read like CLI flags)
/// and the reserved zero/one ids; so do we.
pub fn random_uuid() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        let text = to_base64(&id);
        if !text.starts_with('-') && id.as_u128() > 1 {
            return id;
        }
    }
}

/// The base64 symbol for the low six bits of `sextet`.
fn symbol(sextet: u32) -> char {
    // The mask keeps the index below 64, so the lookup always hits.
    ALPHABET
        .get((sextet & 63) as usize)
        .map_or('A', |b| char::from(*b))
}

pub fn to_base64(id: &Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(symbol(acc >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(acc << (6 - bits)));
    }
    out
}

pub fn from_base64(text: &str) -> Option<Uuid> {
    if text.len() != 22 {
        return None;
    }
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut out = [0u8; 16];
    let mut n = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if let Some(slot) = out.get_mut(n) {
                *slot = ((acc >> bits) & 0xff) as u8;
            }
            n += 1;
        }
    }
    (n == 16).then(|| Uuid::from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_has_kafka_length() {
        for _ in 0..100 {
            let id = random_uuid();
            let text = to_base64(&id);
            assert_eq!(text.len(), 22);
            assert_eq!(from_base64(&text), Some(id));
        }
    }

    #[test]
    fn matches_kafka_known_value() {
        // Kafka: new Uuid(0L, 1L).toString() == "AAAAAAAAAAAAAAAAAAAAAQ"
        assert_eq!(to_base64(&Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
    }
}
