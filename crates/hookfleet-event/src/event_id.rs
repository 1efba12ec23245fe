use std::fmt;

/// The deduplication key of an event: the lowercase hex SHA-256 of the raw
/// webhook body. Tolinku retries send the same bytes, so a retry has the
/// same id as the original.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId([u8; 32]);

impl EventId {
    /// Hashes a raw body.
    pub fn of_body(body: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Parses the 64-character lowercase hex form.
    pub fn parse(hex_id: &str) -> Option<Self> {
        if hex_id.len() != 64 || hex_id.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_id, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The lowercase hex form used on the bus and in storage.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        let id = EventId::of_body(b"abc");
        assert_eq!(
            id.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_forms() {
        let id = EventId::of_body(b"{}");
        assert_eq!(EventId::parse(&id.to_hex()), Some(id));
        assert_eq!(EventId::parse(&id.to_hex().to_uppercase()), None);
        assert_eq!(EventId::parse("abc"), None);
        assert_eq!(EventId::parse(&"zz".repeat(32)), None);
    }
}
