//! AWS Signature Version 4 for the `POST /` requests of [`super`]: the
//! query (SNS) and JSON (SQS) protocols, which sign no query string and a
//! fixed, small set of headers.
//!
//! The signing key depends only on the secret, the day, the region and the
//! service, so it is derived once a day per [`Signer`] instead of four
//! HMACs per request.

use std::sync::Mutex;

use ring::{digest, hmac};

/// The algorithm name, in the string to sign and the `Authorization`
/// header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What signs one request: which keys, and the `x-amz-date` it is made at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signing<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) session_token: Option<&'a str>,
    /// `YYYYMMDDTHHMMSSZ`, UTC.
    pub(crate) amz_date: &'a str,
}

/// The request to sign: always `POST` with no query string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// The URI path, already in canonical form (`/` for AWS endpoints).
    pub(crate) path: &'a str,
    /// The `Host` header sent: `host` or `host:port`.
    pub(crate) host: &'a str,
    pub(crate) content_type: &'a str,
    /// `X-Amz-Target`, for the JSON protocol.
    pub(crate) target: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// Signs requests for one service in one region, caching the day's
/// signing key.
#[derive(Debug)]
pub(crate) struct Signer {
    region: String,
    service: &'static str,
    /// The day (`YYYYMMDD`), the secret it was derived from, and the key.
    key: Mutex<Option<(String, String, hmac::Key)>>,
}

impl Signer {
    pub(crate) fn new(region: impl Into<String>, service: &'static str) -> Self {
        Self {
            region: region.into(),
            service,
            key: Mutex::new(None),
        }
    }

    /// The `Authorization` header's value for `request`.
    pub(crate) fn authorization(&self, signing: &Signing<'_>, request: &Request<'_>) -> String {
        let day = &signing.amz_date[..8.min(signing.amz_date.len())];
        let canonical = canonical_request(signing, request);
        let canonical_hash = hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()));

        let scope = format!("{day}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{canonical_hash}",
            signing.amz_date
        );
        let key = self.signing_key(day, signing.secret_access_key);
        let signature = hex::encode(hmac::sign(&key, string_to_sign.as_bytes()));
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            signing.access_key_id,
            signed_headers(signing, request)
        )
    }

    fn signing_key(&self, day: &str, secret: &str) -> hmac::Key {
        let mut cached = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached_day, cached_secret, key)) = cached.as_ref()
            && cached_day == day
            && cached_secret == secret
        {
            return key.clone();
        }
        let key = derive_key(secret, day, &self.region, self.service);
        *cached = Some((day.to_owned(), secret.to_owned(), key.clone()));
        key
    }
}

/// `kSigning` of the SigV4 specification.
fn derive_key(secret: &str, day: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let date_key = step(format!("AWS4{secret}").as_bytes(), day);
    let region_key = step(date_key.as_ref(), region);
    let service_key = step(region_key.as_ref(), service);
    let signing_key = step(service_key.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_ref())
}

/// The signed header names, sorted, `;`-separated.
fn signed_headers(signing: &Signing<'_>, request: &Request<'_>) -> &'static str {
    match (signing.session_token.is_some(), request.target.is_some()) {
        (false, false) => "content-type;host;x-amz-date",
        (false, true) => "content-type;host;x-amz-date;x-amz-target",
        (true, false) => "content-type;host;x-amz-date;x-amz-security-token",
        (true, true) => "content-type;host;x-amz-date;x-amz-security-token;x-amz-target",
    }
}

fn canonical_request(signing: &Signing<'_>, request: &Request<'_>) -> String {
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, request.body));
    let mut canonical = String::with_capacity(256);
    canonical.push_str("POST\n");
    canonical.push_str(request.path);
    canonical.push_str("\n\n");
    canonical.push_str("content-type:");
    canonical.push_str(request.content_type.trim());
    canonical.push_str("\nhost:");
    canonical.push_str(request.host.trim());
    canonical.push_str("\nx-amz-date:");
    canonical.push_str(signing.amz_date);
    canonical.push('\n');
    if let Some(token) = signing.session_token {
        canonical.push_str("x-amz-security-token:");
        canonical.push_str(token.trim());
        canonical.push('\n');
    }
    if let Some(target) = request.target {
        canonical.push_str("x-amz-target:");
        canonical.push_str(target.trim());
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(signed_headers(signing, request));
    canonical.push('\n');
    canonical.push_str(&payload_hash);
    canonical
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's SigV4 documentation ("Create a signed
    /// AWS API request"): IAM `ListUsers` as a form POST, its derived key
    /// and its signature.
    #[test]
    fn matches_the_documented_signing_key() {
        let key = derive_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        let signature = hex::encode(hmac::sign(
            &key,
            b"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
        ));
        assert_eq!(
            signature,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    fn signing(token: Option<&'static str>) -> Signing<'static> {
        Signing {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: token,
            amz_date: "20261203T101112Z",
        }
    }

    fn request(target: Option<&'static str>) -> Request<'static> {
        Request {
            path: "/",
            host: "sqs.eu-west-1.amazonaws.com",
            content_type: "application/x-amz-json-1.0",
            target,
            body: br#"{"QueueUrl":"q"}"#,
        }
    }

    /// The same request signed by the AWS SDK's own signer must give the
    /// same signature, with and without a session token and a target.
    #[test]
    fn agrees_with_the_aws_sdk_signer() {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;
        use aws_smithy_runtime_api::client::identity::Identity;

        for token in [None, Some("the-session-token")] {
            for target in [None, Some("AmazonSQS.ReceiveMessage")] {
                let ours = Signer::new("eu-west-1", "sqs")
                    .authorization(&signing(token), &request(target));

                let credentials = aws_credential_types::Credentials::new(
                    "AKIDEXAMPLE",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    token.map(str::to_owned),
                    None,
                    "test",
                );
                let identity = Identity::from(credentials);
                let time = time::macros::datetime!(2026-12-03 10:11:12 UTC);
                let params = v4::SigningParams::builder()
                    .identity(&identity)
                    .region("eu-west-1")
                    .name("sqs")
                    .time(time.into())
                    .settings(SigningSettings::default())
                    .build()
                    .expect("params")
                    .into();
                let mut headers = vec![
                    ("host", "sqs.eu-west-1.amazonaws.com"),
                    ("content-type", "application/x-amz-json-1.0"),
                ];
                if let Some(target) = target {
                    headers.push(("x-amz-target", target));
                }
                let signable = SignableRequest::new(
                    "POST",
                    "https://sqs.eu-west-1.amazonaws.com/",
                    headers.into_iter(),
                    SignableBody::Bytes(br#"{"QueueUrl":"q"}"#),
                )
                .expect("signable");
                let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
                let theirs = instructions
                    .headers()
                    .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
                    .map(|(_, value)| value.to_owned())
                    .expect("authorization");
                assert_eq!(ours, theirs, "token {token:?}, target {target:?}");
            }
        }
    }

    #[test]
    fn a_new_day_or_secret_derives_a_new_key() {
        let signer = Signer::new("eu-west-1", "sqs");
        let a = signer.authorization(&signing(None), &request(None));
        let mut next_day = signing(None);
        next_day.amz_date = "20261204T101112Z";
        let b = signer.authorization(&next_day, &request(None));
        let mut rotated = signing(None);
        rotated.secret_access_key = "another";
        let c = signer.authorization(&rotated, &request(None));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, signer.authorization(&signing(None), &request(None)));
    }
}
