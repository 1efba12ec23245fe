use std::fmt;

use ring::hmac;

/// The largest body hookfleet accepts (SPEC §6: larger is `413`). Checked
/// before any hashing, so an oversized body costs no CPU.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The prefix some deliveries put before the hex digest.
const SHA256_PREFIX: &str = "sha256=";

/// One webhook secret. The HMAC key is the secret's bytes exactly as
/// written, `whsec_` prefix included. `Debug` never shows it.
pub struct Secret {
    key: hmac::Key,
}

impl Secret {
    /// Builds a secret from its text.
    pub fn new(text: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("no secret given")]
    Empty,
    #[error("secret {0} (counting from 0) is empty or contains whitespace")]
    Malformed(usize),
}

/// Why a signature was refused. Never sent to the caller (it only gets a
/// bare `401`); kept for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature is not 64 hex characters")]
    Malformed,
    #[error("signature matches no secret")]
    Mismatch,
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

impl SignatureError {
    /// A short label for metrics.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
            Self::TooLarge => "too_large",
        }
    }
}

/// Checks `X-Webhook-Signature` against one or several secrets.
///
/// Several secrets exist during a rotation: Tolinku signs with the new one
/// while deliveries signed with the old one may still be retried. The
/// position of the secret that matched is returned so operators can see,
/// through a metric, when the old one stops being used.
#[derive(Debug)]
pub struct Verifier {
    secrets: Vec<Secret>,
}

impl Verifier {
    /// Parses a comma-separated list (`HOOKFLEET_WEBHOOK_SECRET`). Spaces
    /// around entries and a trailing newline (secret files) are ignored.
    pub fn from_list(list: &str) -> Result<Self, SecretsError> {
        let list = list.trim();
        if list.is_empty() {
            return Err(SecretsError::Empty);
        }
        let secrets = list
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(position, text)| {
                if text.is_empty() || text.contains(char::is_whitespace) {
                    Err(SecretsError::Malformed(position))
                } else {
                    Ok(Secret::new(text))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { secrets })
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Always false: a verifier holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Verifies `header` (hex, optionally `sha256=`-prefixed) over `body`
    /// and returns the position of the matching secret. Comparison is
    /// constant-time (`ring::hmac::verify`).
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<usize, SignatureError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(SignatureError::TooLarge);
        }
        let header = header.ok_or(SignatureError::Missing)?.trim();
        let hex_digest = header.strip_prefix(SHA256_PREFIX).unwrap_or(header);
        let mut expected = [0u8; 32];
        if hex_digest.len() != 64 || hex::decode_to_slice(hex_digest, &mut expected).is_err() {
            return Err(SignatureError::Malformed);
        }
        self.secrets
            .iter()
            .position(|secret| hmac::verify(&secret.key, body, &expected).is_ok())
            .ok_or(SignatureError::Mismatch)
    }
}

/// Signs a body the way Tolinku does: lowercase hex HMAC-SHA256. Used by
/// `hookfleet send`, the tests and the load generator.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, body).as_ref())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BODY: &[u8] = br#"{"event":"test","timestamp":"2026-12-03T10:15:30Z","data":{}}"#;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            hex::encode(tag.as_ref())
        );
    }

    #[test]
    fn accepts_both_header_forms() {
        let verifier = Verifier::from_list("whsec_a").unwrap();
        let signature = sign("whsec_a", BODY);
        assert_eq!(verifier.verify(BODY, Some(&signature)), Ok(0));
        let prefixed = format!("sha256={signature}");
        assert_eq!(verifier.verify(BODY, Some(&prefixed)), Ok(0));
    }

    #[test]
    fn reports_which_secret_matched() {
        let verifier = Verifier::from_list(" whsec_new , whsec_old\n").unwrap();
        assert_eq!(verifier.len(), 2);
        assert_eq!(verifier.verify(BODY, Some(&sign("whsec_old", BODY))), Ok(1));
        assert_eq!(verifier.verify(BODY, Some(&sign("whsec_new", BODY))), Ok(0));
        assert_eq!(
            verifier.verify(BODY, Some(&sign("whsec_other", BODY))),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_bad_headers_and_sizes() {
        let verifier = Verifier::from_list("whsec_a").unwrap();
        assert_eq!(verifier.verify(BODY, None), Err(SignatureError::Missing));
        assert_eq!(
            verifier.verify(BODY, Some("sha256=")),
            Err(SignatureError::Malformed)
        );
        let upper = sign("whsec_a", BODY).to_uppercase();
        // Hex decoding is case-insensitive; the spec's senders use
        // lowercase, and accepting uppercase loses nothing.
        assert_eq!(verifier.verify(BODY, Some(&upper)), Ok(0));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            verifier.verify(&big, Some(&sign("whsec_a", &big))),
            Err(SignatureError::TooLarge)
        );
    }

    #[test]
    fn secret_lists_are_validated_and_never_printed() {
        assert_eq!(Verifier::from_list(" \n").unwrap_err(), SecretsError::Empty);
        assert_eq!(
            Verifier::from_list("whsec_a,,whsec_b").unwrap_err(),
            SecretsError::Malformed(1)
        );
        let verifier = Verifier::from_list("whsec_supersecret").unwrap();
        assert!(!format!("{verifier:?}").contains("supersecret"));
    }

    proptest! {
        #[test]
        fn any_change_to_the_body_fails(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            index in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let verifier = Verifier::from_list("whsec_prop").unwrap();
            let signature = sign("whsec_prop", &body);
            prop_assert_eq!(verifier.verify(&body, Some(&signature)), Ok(0));
            let mut changed = body.clone();
            if changed.is_empty() {
                changed.push(flip);
            } else {
                let i = index.index(changed.len());
                changed[i] ^= flip;
            }
            prop_assert_eq!(
                verifier.verify(&changed, Some(&signature)),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn any_change_to_the_signature_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            index in any::<proptest::sample::Index>(),
            replacement in proptest::sample::select("0123456789abcdef".chars().collect::<Vec<_>>()),
        ) {
            let verifier = Verifier::from_list("whsec_prop").unwrap();
            let signature = sign("whsec_prop", &body);
            let i = index.index(signature.len());
            let mut changed: Vec<char> = signature.chars().collect();
            prop_assume!(changed[i] != replacement);
            changed[i] = replacement;
            let changed: String = changed.into_iter().collect();
            prop_assert!(verifier.verify(&body, Some(&changed)).is_err());
        }

        #[test]
        fn no_header_panics(header in ".{0,100}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let verifier = Verifier::from_list("whsec_prop").unwrap();
            let _ = verifier.verify(&body, Some(&header));
        }

        #[test]
        fn no_body_panics_the_parser(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = crate::Envelope::parse(&body);
        }

        #[test]
        fn no_json_shaped_body_panics_the_parser(body in r#"\{("(event|timestamp|data)":("[^"]{0,20}"|\{\}|\[\]|[0-9]{1,3}|null),?){0,4}\}"#) {
            let _ = crate::Envelope::parse(body.as_bytes());
        }
    }
}
