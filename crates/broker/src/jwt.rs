//! HS256 JWTs signed with a site's secret, of two kinds:
//!
//! - agent JWTs, which a site's own systems (a CRM, a help desk) mint so
//!   their agents can redeem codes without a broker-issued API token
//!   (claims `sub`, `name`, `site`, `exp`; [`verify`]);
//! - visitor identity tokens, which a site's server mints for its logged-in
//!   user so the agent can trust who the visitor is (claims `sub`, `name`,
//!   `email`, `custom`, `exp`, and never `site`; [`verify_identity`]).
//!
//! Written by hand rather than with a JWT library because only one narrow
//! shape is accepted, and every check is visible here: the header's `alg`
//! must be exactly `HS256` (so `none` and algorithm confusion are refused
//! before any key is looked at), the signature is compared in constant time,
//! `exp` is required and at most a day away (these tokens are meant to be
//! short-lived; a long-lived credential is what the API token is for).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::config::{Config, SiteSecret};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "HS256";

/// How far the issuer's clock may be from ours, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Longest accepted time from now to `exp`, in seconds: one day.
pub const MAX_LIFETIME_SECS: u64 = 86_400;

/// Longest agent id (`sub`), in characters.
pub const MAX_SUB_LEN: usize = 64;

/// Longest agent name (`name`), in characters.
pub const MAX_NAME_LEN: usize = 100;

/// The claims of an agent JWT. Other claims (`jti`, `iss`, …) are allowed
/// and ignored, so a CRM can use its usual token library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The agent's id, unique within the site.
    pub sub: String,
    /// The agent's display name, shown to the visitor.
    pub name: String,
    /// The key of the site whose secret signed the token.
    pub site: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// When the token was issued, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Why a JWT was refused. The message goes to the client (it helps whoever
/// integrates the CRM) and never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the JWT is malformed: {0}")]
    Malformed(&'static str),
    #[error("the JWT's alg must be HS256")]
    Algorithm,
    #[error("the JWT names a site this broker does not know")]
    UnknownSite,
    #[error("the JWT's site accepts no JWTs (it has no secret configured)")]
    NoSecret,
    #[error("the JWT's signature does not match")]
    BadSignature,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT's lifetime is too long (exp is more than 24 hours away)")]
    LifetimeTooLong,
    #[error("the JWT was issued in the future (iat)")]
    NotYetIssued,
    #[error("the JWT's {0} claim is invalid")]
    InvalidClaim(&'static str),
}

/// True when `token` has the shape of a JWT: three parts joined by two dots.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// What every accepted token carries: when it expires and, optionally,
/// when it was issued.
trait Lifetime {
    fn exp(&self) -> u64;
    fn iat(&self) -> Option<u64>;
}

impl Lifetime for Claims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn iat(&self) -> Option<u64> {
        self.iat
    }
}

/// The checks every token gets, agent or identity: the header's `alg` is
/// exactly HS256 and no `crit`; the claims parse as `C`; the signature
/// matches the secret `secret_for` picks (from the still untrusted claims);
/// `exp` has not passed and is at most a day away; `iat` is not in the
/// future.
fn verify_signed<'k, C, F>(token: &str, secret_for: F, now_secs: u64) -> Result<C, JwtError>
where
    C: serde::de::DeserializeOwned + Lifetime,
    F: FnOnce(&C) -> Result<&'k [u8], JwtError>,
{
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected header.claims.signature"));
    };

    let header: Value = decode_json(header_b64).ok_or(JwtError::Malformed("header"))?;
    if header.get("alg").and_then(Value::as_str) != Some(ALGORITHM) {
        return Err(JwtError::Algorithm);
    }
    // A critical extension we do not implement must not be silently ignored
    // (RFC 7515, section 4.1.11).
    if header.get("crit").is_some() {
        return Err(JwtError::Malformed("unsupported crit header"));
    }

    // The claims are read before the signature is checked only to find the
    // key; nothing in them is trusted until the signature matches.
    let claims: C = decode_json(claims_b64).ok_or(JwtError::Malformed("claims"))?;
    let secret = secret_for(&claims)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed("signature"))?;
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    // `verify_slice` compares in constant time.
    mac(secret, signed.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;

    if now_secs >= claims.exp().saturating_add(LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    if claims.exp().saturating_sub(now_secs) > MAX_LIFETIME_SECS {
        return Err(JwtError::LifetimeTooLong);
    }
    if claims
        .iat()
        .is_some_and(|iat| iat > now_secs.saturating_add(LEEWAY_SECS))
    {
        return Err(JwtError::NotYetIssued);
    }
    Ok(claims)
}

/// Checks `token` against the secret of the site it names, at `now_secs`
/// (seconds since the Unix epoch), and returns its claims.
pub fn verify(token: &str, config: &Config, now_secs: u64) -> Result<Claims, JwtError> {
    let claims: Claims = verify_signed(
        token,
        |claims: &Claims| {
            let site = config.site(&claims.site).ok_or(JwtError::UnknownSite)?;
            let secret = site.secret.as_ref().ok_or(JwtError::NoSecret)?;
            Ok(secret.as_bytes())
        },
        now_secs,
    )?;
    if !text_ok(&claims.sub, MAX_SUB_LEN) {
        return Err(JwtError::InvalidClaim("sub"));
    }
    if !text_ok(&claims.name, MAX_NAME_LEN) {
        return Err(JwtError::InvalidClaim("name"));
    }
    Ok(claims)
}

/// The claims of a visitor's identity token: who the site's server says
/// its logged-in user is. The token is checked with the secret of the site
/// the code request is for, so it names no site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    /// The site's own id for the user.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Extra facts for the agent; strings only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<BTreeMap<String, String>>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Never set in an identity token: its presence is what makes a token
    /// an agent's (see [`Claims::site`]). Read only so that it can be
    /// refused.
    #[serde(default, skip_serializing)]
    site: Option<Value>,
}

impl IdentityClaims {
    /// Claims for `sub` expiring at `exp`, the rest empty.
    pub fn new(sub: impl Into<String>, exp: u64) -> Self {
        Self {
            sub: sub.into(),
            name: None,
            email: None,
            custom: None,
            exp,
            iat: None,
            site: None,
        }
    }
}

impl Lifetime for IdentityClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn iat(&self) -> Option<u64> {
        self.iat
    }
}

/// Checks a visitor's identity token against `secret` (the secret of the
/// site the code request is for) at `now_secs`, with the same rules as an
/// agent JWT, and returns its claims. The claims' values are checked by
/// the caller, against the fields sent beside the token.
///
/// A token with a `site` claim is refused: agent JWTs are told apart by
/// that claim, and both kinds are signed with the same secret, so an agent
/// JWT must never pass as a visitor (and a site that puts `site` in its
/// identity tokens learns at once, before its visitors' tokens could pass
/// as agents').
pub fn verify_identity(
    token: &str,
    secret: &SiteSecret,
    now_secs: u64,
) -> Result<IdentityClaims, JwtError> {
    let claims: IdentityClaims =
        verify_signed(token, |_: &IdentityClaims| Ok(secret.as_bytes()), now_secs)?;
    if claims.site.is_some() {
        return Err(JwtError::InvalidClaim("site"));
    }
    Ok(claims)
}

/// Signs `claims` as an HS256 JWT with `secret`. The broker itself never
/// mints agent tokens; this is for tests, tools, Rust-based CRMs, and the
/// demo login's identity tokens.
pub fn encode(claims: &impl Serialize, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serializing plain structs to JSON cannot fail; an empty object would
    // only produce a token that `verify` refuses.
    let claims = serde_json::to_vec(claims).unwrap_or_else(|_| b"{}".to_vec());
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature = mac(secret, signed.as_bytes()).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn mac(secret: &[u8], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key");
    mac.update(message);
    mac
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Non-blank, at most `max` characters, no control characters (they would
/// garble a log line or the console).
fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-demo";
    const NOW: u64 = 1_700_000_000;

    fn config() -> Config {
        Config::from_toml(&format!(
            r#"
            [[site]]
            key = "demo"
            name = "Demo"
            allowed_origins = []
            secret = "{SECRET}"

            [[site]]
            key = "plain"
            name = "No Secret"
            allowed_origins = []
            "#
        ))
        .unwrap()
    }

    fn claims(site: &str, exp: u64) -> Value {
        json!({ "sub": "crm-42", "name": "Dana", "site": site, "exp": exp, "iat": NOW })
    }

    /// A token with any header, signed with `secret`.
    fn with_header(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = mac(secret, signed.as_bytes()).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn a_valid_token_is_accepted() {
        let token = encode(&claims("demo", NOW + 600), SECRET.as_bytes());
        assert!(looks_like_jwt(&token));
        let c = verify(&token, &config(), NOW).unwrap();
        assert_eq!((c.sub.as_str(), c.name.as_str()), ("crm-42", "Dana"));
        assert_eq!(c.site, "demo");
    }

    #[test]
    fn expiry_allows_a_little_leeway_and_no_more() {
        let token = encode(&claims("demo", NOW), SECRET.as_bytes());
        assert!(verify(&token, &config(), NOW + 29).is_ok());
        assert_eq!(verify(&token, &config(), NOW + 30), Err(JwtError::Expired));
        let no_exp = encode(
            &json!({ "sub": "a", "name": "b", "site": "demo" }),
            SECRET.as_bytes(),
        );
        assert_eq!(
            verify(&no_exp, &config(), NOW),
            Err(JwtError::Malformed("claims"))
        );
    }

    #[test]
    fn long_lived_tokens_are_refused() {
        let ok = encode(&claims("demo", NOW + 86_400), SECRET.as_bytes());
        assert!(verify(&ok, &config(), NOW).is_ok());
        let long = encode(&claims("demo", NOW + 86_401), SECRET.as_bytes());
        assert_eq!(
            verify(&long, &config(), NOW),
            Err(JwtError::LifetimeTooLong)
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let c = claims("demo", NOW + 60);
        for header in [
            json!({ "alg": "none" }),
            json!({ "alg": "HS512", "typ": "JWT" }),
            json!({ "alg": "hs256" }),
            json!({ "alg": "RS256" }),
            json!({ "typ": "JWT" }),
        ] {
            let token = with_header(&header, &c, SECRET.as_bytes());
            assert_eq!(
                verify(&token, &config(), NOW),
                Err(JwtError::Algorithm),
                "{header}"
            );
        }
        // `alg: none` with an empty signature, the classic attack.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(c.to_string())
        );
        assert_eq!(verify(&none, &config(), NOW), Err(JwtError::Algorithm));
    }

    #[test]
    fn a_wrong_signature_or_secret_is_refused() {
        let token = encode(
            &claims("demo", NOW + 60),
            b"another secret of enough length!!",
        );
        assert_eq!(verify(&token, &config(), NOW), Err(JwtError::BadSignature));
        // Changing a claim breaks the signature.
        let good = encode(&claims("demo", NOW + 60), SECRET.as_bytes());
        let parts: Vec<&str> = good.split('.').collect();
        let mut forged = claims("demo", NOW + 60);
        forged["name"] = json!("Mallory");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged.to_string()),
            parts[2]
        );
        assert_eq!(verify(&forged, &config(), NOW), Err(JwtError::BadSignature));
    }

    #[test]
    fn the_site_must_exist_and_have_a_secret() {
        let unknown = encode(&claims("nope", NOW + 60), SECRET.as_bytes());
        assert_eq!(verify(&unknown, &config(), NOW), Err(JwtError::UnknownSite));
        let plain = encode(&claims("plain", NOW + 60), SECRET.as_bytes());
        assert_eq!(verify(&plain, &config(), NOW), Err(JwtError::NoSecret));
    }

    #[test]
    fn claims_are_checked() {
        let mut c = claims("demo", NOW + 60);
        c["sub"] = json!("x".repeat(65));
        let t = encode(&c, SECRET.as_bytes());
        assert_eq!(
            verify(&t, &config(), NOW),
            Err(JwtError::InvalidClaim("sub"))
        );
        let mut c = claims("demo", NOW + 60);
        c["name"] = json!(" ");
        let t = encode(&c, SECRET.as_bytes());
        assert_eq!(
            verify(&t, &config(), NOW),
            Err(JwtError::InvalidClaim("name"))
        );
        let mut c = claims("demo", NOW + 60);
        c["iat"] = json!(NOW + 3600);
        let t = encode(&c, SECRET.as_bytes());
        assert_eq!(verify(&t, &config(), NOW), Err(JwtError::NotYetIssued));
        for junk in ["a.b.c", "..", "a.b", "x.y.z.w", ""] {
            assert!(
                matches!(verify(junk, &config(), NOW), Err(JwtError::Malformed(_))),
                "{junk}"
            );
        }
    }
}
