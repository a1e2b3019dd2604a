//! Who the visitor is (seeds 002, 003): what a code request may say about
//! its visitor under the site's `auth_mode`, the checks that say it, and
//! the visitor as the agent sees them.
//!
//! A code request can carry three things about its visitor:
//! - `visitor_id`, the widget's anonymous id (128 random bits as 32 hex),
//!   which ties the visitor's tickets together across visits;
//! - `visitor`, what they typed into the form (unverified, kind `typed`);
//! - `identity`, the site's logged-in user with a token the site's server
//!   signed with the site secret (kind `verified`).
//!
//! The site's mode decides what is required: nothing (`visitor`,
//! `optional-form`), a verified identity (`code`), or a typed name and
//! email (`form`, unless the visitor is verified). Whatever is sent is
//! checked in every mode; an identity is always verified, so a site in
//! `visitor` mode with a login (the demo shop) can still merge a visitor's
//! anonymous tickets into their account once they sign in. Typed data and
//! an identity together are refused: the signed identity already says who
//! the visitor is, and nothing typed may sit beside it unverified.

use std::collections::BTreeMap;

use agent_assist_protocol::{
    AuthMode, CreateCodeRequest, ErrorCode, Identity, IdentityKind, VisitorInfo, VisitorView,
    MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, MAX_TEXT_FIELD,
};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::Site;
use crate::error::{AppError, Result};
use crate::jwt;
use crate::store::{TypedVisitor, VerifiedUser, VisitorClaim, VisitorHistory};

/// How many of a visitor's tickets the agent is shown, newest first. A
/// visitor with more has long been a regular; the oldest are not what the
/// agent needs on the phone.
pub const MAX_TICKETS: usize = 50;

/// What the code request `req` says about its visitor, checked against
/// `site`'s mode at `now_secs` (for the identity token's expiry).
///
/// Refuses with 400 `invalid_field` (naming the field) for malformed data,
/// 401 `identity_required` when a `code` site gets no identity, and 401
/// `invalid_identity` for a token that is missing, forged, expired, of
/// another algorithm, or that does not sign exactly the fields sent.
pub fn check_code_request(
    site: &Site,
    req: &CreateCodeRequest,
    now_secs: u64,
) -> Result<VisitorClaim> {
    let visitor_id = match &req.visitor_id {
        Some(id) if !is_visitor_id(id) => {
            return Err(invalid_field(
                "visitor_id must be 32 lowercase hex digits (128 random bits), as the widget \
                 makes it",
            ))
        }
        id => id.clone(),
    };
    let typed = match &req.visitor {
        Some(info) => check_typed(info)?,
        None => None,
    };
    let verified = match &req.identity {
        Some(identity) => {
            if typed.is_some() {
                return Err(invalid_field(
                    "visitor: send either what the visitor typed or a signed identity, not both",
                ));
            }
            Some(check_identity(site, identity, now_secs)?)
        }
        None => None,
    };
    match site.auth_mode {
        AuthMode::Code if verified.is_none() => {
            return Err(AppError::new(
                ErrorCode::IdentityRequired,
                "this site identifies its visitors: the page must call AgentAssist.identify() \
                 with the identity its server signed before a code can be made",
            ));
        }
        AuthMode::Form if verified.is_none() => {
            let typed = typed.as_ref();
            if typed.and_then(|t| t.name.as_ref()).is_none() {
                return Err(invalid_field("visitor.name is required on this site"));
            }
            if typed.and_then(|t| t.email.as_ref()).is_none() {
                return Err(invalid_field("visitor.email is required on this site"));
            }
        }
        _ => {}
    }
    Ok(VisitorClaim {
        visitor_id,
        verified,
        typed,
    })
}

/// True when `id` is 32 lowercase hex digits, the shape of the widget's
/// anonymous visitor id.
pub fn is_visitor_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True when `email` looks like an email address: one `@` with something
/// before it, a dot inside the domain, no spaces or control characters, at
/// most [`MAX_TEXT_FIELD`] characters. Whether it reaches anyone is the
/// site's business; this only keeps typos and junk out of the agent's view.
pub fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.chars().count() <= MAX_TEXT_FIELD
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.is_empty()
        && !domain.contains('@')
        && domain
            .split_once('.')
            .is_some_and(|(host, _)| !host.is_empty())
        && !domain.ends_with('.')
}

/// The form data, trimmed, blanks as absent; `None` when nothing is left.
fn check_typed(info: &VisitorInfo) -> Result<Option<TypedVisitor>> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = given(&info.name);
    let email = given(&info.email);
    if let Some(name) = &name {
        check_text("visitor.name", name)?;
    }
    if let Some(email) = &email {
        check_email("visitor.email", email)?;
    }
    Ok((name.is_some() || email.is_some()).then_some(TypedVisitor { name, email }))
}

/// Checks the identity's fields, then its token against them.
fn check_identity(site: &Site, identity: &Identity, now_secs: u64) -> Result<VerifiedUser> {
    if identity.user_id.trim().is_empty() {
        return Err(invalid_field("identity.user_id must not be empty"));
    }
    check_text("identity.user_id", &identity.user_id)?;
    if let Some(name) = &identity.name {
        check_text("identity.name", name)?;
    }
    if let Some(email) = &identity.email {
        check_email("identity.email", email)?;
    }
    let custom_data = identity.custom_data.clone().unwrap_or_default();
    check_custom_data("identity.custom_data", &custom_data)?;

    if identity.token.is_empty() {
        return Err(invalid_identity(
            "identity.token is empty: the identity must be signed by the site's server",
        ));
    }
    let secret = site.secret.as_ref().ok_or_else(|| {
        invalid_identity("this site has no secret configured, so it cannot verify identities")
    })?;
    let claims = jwt::verify_identity(&identity.token, secret, now_secs)
        .map_err(|e| invalid_identity(format!("identity.token refused: {e}")))?;
    let signed_custom = claims.custom.unwrap_or_default();
    let mismatch = if claims.sub != identity.user_id {
        Some("user_id (sub)")
    } else if claims.name != identity.name {
        Some("name")
    } else if claims.email != identity.email {
        Some("email")
    } else if signed_custom != custom_data {
        Some("custom_data (custom)")
    } else {
        None
    };
    if let Some(field) = mismatch {
        return Err(invalid_identity(format!(
            "identity.{field} differs from what the token signs; send exactly the signed values"
        )));
    }
    Ok(VerifiedUser {
        user_id: identity.user_id.clone(),
        name: identity.name.clone(),
        email: identity.email.clone(),
        custom_data,
    })
}

fn check_text(field: &str, value: &str) -> Result<()> {
    if value.chars().count() > MAX_TEXT_FIELD {
        return Err(invalid_field(format!(
            "{field} is longer than {MAX_TEXT_FIELD} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid_field(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

fn check_email(field: &str, value: &str) -> Result<()> {
    check_text(field, value)?;
    if !is_email(value) {
        return Err(invalid_field(format!(
            "{field} is not an email address (expected name@example.com)"
        )));
    }
    Ok(())
}

fn check_custom_data(field: &str, custom: &BTreeMap<String, String>) -> Result<()> {
    if custom.len() > MAX_CUSTOM_FIELDS {
        return Err(invalid_field(format!(
            "{field} has {} entries; at most {MAX_CUSTOM_FIELDS} are allowed",
            custom.len()
        )));
    }
    for (key, value) in custom {
        let shown: String = key.chars().take(MAX_CUSTOM_KEY).collect();
        if key.trim().is_empty() {
            return Err(invalid_field(format!("{field} has an empty key")));
        }
        if key.chars().count() > MAX_CUSTOM_KEY || key.chars().any(char::is_control) {
            return Err(invalid_field(format!(
                "{field} key {shown:?}… is longer than {MAX_CUSTOM_KEY} characters or has \
                 control characters"
            )));
        }
        if value.chars().count() > MAX_TEXT_FIELD {
            return Err(invalid_field(format!(
                "{field}.{shown} is longer than {MAX_TEXT_FIELD} characters"
            )));
        }
    }
    Ok(())
}

fn invalid_field(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidField, message)
}

fn invalid_identity(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidIdentity, message)
}

/// `Web User - MM/DD HH:MM`: `first_seen_ms` in `zone`, 24-hour, zero
/// padded. What an anonymous visitor is called (seed 002), so an agent with
/// several on the line can tell them apart by when they first asked.
pub fn web_user_label(first_seen_ms: u64, zone: &TimeZone) -> String {
    let at = i64::try_from(first_seen_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX);
    let t = zone.to_datetime(at);
    format!(
        "Web User - {:02}/{:02} {:02}:{:02}",
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The visitor as the agent sees them, names in `zone`.
pub fn view(history: VisitorHistory, zone: &TimeZone) -> VisitorView {
    let record = history.record;
    let name = record.name.filter(|n| !n.trim().is_empty());
    VisitorView {
        display_name: name
            .clone()
            .unwrap_or_else(|| web_user_label(record.first_seen, zone)),
        name,
        email: record.email,
        kind: record.kind,
        user_id: record
            .user_id
            .filter(|_| record.kind == IdentityKind::Verified),
        custom_data: (!record.custom_data.is_empty()).then_some(record.custom_data),
        tickets: history.tickets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SiteSecret, SiteTimeZone};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-identity";
    const NOW: u64 = 1_700_000_000;

    fn zone(name: &str) -> TimeZone {
        SiteTimeZone::named(name).unwrap().zone().clone()
    }

    /// Milliseconds of a UTC date and time.
    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> u64 {
        let ts = jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp();
        u64::try_from(ts.as_millisecond()).unwrap()
    }

    #[test]
    fn anonymous_visitors_are_named_by_first_contact_zero_padded_24h() {
        let z = TimeZone::UTC;
        assert_eq!(
            web_user_label(1_700_000_000_000, &z),
            "Web User - 11/14 22:13"
        );
        assert_eq!(
            web_user_label(utc(2024, 1, 1, 1, 1), &z),
            "Web User - 01/01 01:01"
        );
        assert_eq!(
            web_user_label(utc(2024, 10, 5, 10, 15), &z),
            "Web User - 10/05 10:15"
        );
        assert_eq!(
            web_user_label(utc(2024, 12, 31, 23, 59), &z),
            "Web User - 12/31 23:59"
        );
    }

    #[test]
    fn names_are_in_the_sites_time_zone_across_dst_and_date_lines() {
        let paris = zone("Europe/Paris");
        // Winter: UTC+1. The visitor's evening is the next day in Paris.
        assert_eq!(
            web_user_label(utc(2024, 1, 15, 23, 30), &paris),
            "Web User - 01/16 00:30"
        );
        // Summer: UTC+2.
        assert_eq!(
            web_user_label(utc(2024, 7, 1, 8, 5), &paris),
            "Web User - 07/01 10:05"
        );
        // The spring-forward day (31 March 2024, 01:00 UTC): one minute
        // before the change it is 01:59 CET, at the change 03:00 CEST.
        assert_eq!(
            web_user_label(utc(2024, 3, 31, 0, 59), &paris),
            "Web User - 03/31 01:59"
        );
        assert_eq!(
            web_user_label(utc(2024, 3, 31, 1, 0), &paris),
            "Web User - 03/31 03:00"
        );
        // Fall back (27 October 2024, 01:00 UTC): 02:30 happens twice.
        assert_eq!(
            web_user_label(utc(2024, 10, 27, 0, 30), &paris),
            "Web User - 10/27 02:30"
        );
        assert_eq!(
            web_user_label(utc(2024, 10, 27, 1, 30), &paris),
            "Web User - 10/27 02:30"
        );
        // West of UTC, and a half-hour zone.
        assert_eq!(
            web_user_label(utc(2024, 1, 1, 3, 0), &zone("America/New_York")),
            "Web User - 12/31 22:00"
        );
        assert_eq!(
            web_user_label(utc(2024, 1, 1, 0, 0), &zone("Asia/Kolkata")),
            "Web User - 01/01 05:30"
        );
    }

    #[test]
    fn emails_must_look_like_emails() {
        for ok in [
            "a@b.c",
            "alex@example.com",
            "first.last+tag@mail.example.co.uk",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "alex",
            "alex@",
            "@example.com",
            "alex@example",
            "alex@@example.com",
            "a@b@example.com",
            "alex @example.com",
            "alex@exa mple.com",
            "alex@.com",
            "alex@example.",
            "alex@example.com\n",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(200));
        assert!(!is_email(&long));
    }

    #[test]
    fn visitor_ids_are_32_lowercase_hex() {
        assert!(is_visitor_id(&"0a".repeat(16)));
        assert!(!is_visitor_id(&"0A".repeat(16)));
        assert!(!is_visitor_id(&"0a".repeat(15)));
        assert!(!is_visitor_id(&format!("{}g", "0".repeat(31))));
    }

    fn site(mode: AuthMode) -> Site {
        let mut site = Site::new("demo", "Demo", ["https://shop.example"]);
        site.secret = Some(SiteSecret::new(SECRET));
        site.auth_mode = mode;
        site
    }

    fn request(body: serde_json::Value) -> CreateCodeRequest {
        let mut body = body;
        body["site_key"] = json!("demo");
        serde_json::from_value(body).unwrap()
    }

    fn token(claims: &serde_json::Value) -> String {
        jwt::encode(claims, SECRET.as_bytes())
    }

    fn code(e: AppError) -> ErrorCode {
        e.code()
    }

    #[test]
    fn each_mode_requires_what_it_says() {
        let anonymous = request(json!({}));
        let typed = request(json!({ "visitor": { "name": " Ada ", "email": "ada@example.com" } }));
        let only_name = request(json!({ "visitor": { "name": "Ada", "email": "  " } }));
        for mode in [AuthMode::Visitor, AuthMode::OptionalForm] {
            assert!(check_code_request(&site(mode), &anonymous, NOW).is_ok());
            assert!(check_code_request(&site(mode), &only_name, NOW).is_ok());
        }
        let claim = check_code_request(&site(AuthMode::Form), &typed, NOW).unwrap();
        assert_eq!(
            claim.typed,
            Some(TypedVisitor {
                name: Some("Ada".into()),
                email: Some("ada@example.com".into())
            })
        );
        let e = check_code_request(&site(AuthMode::Form), &only_name, NOW).unwrap_err();
        assert!(e.to_string().contains("visitor.email"), "{e}");
        let e = check_code_request(&site(AuthMode::Form), &anonymous, NOW).unwrap_err();
        assert!(e.to_string().contains("visitor.name"), "{e}");
        assert_eq!(
            code(check_code_request(&site(AuthMode::Code), &anonymous, NOW).unwrap_err()),
            ErrorCode::IdentityRequired
        );
        assert_eq!(
            code(check_code_request(&site(AuthMode::Code), &typed, NOW).unwrap_err()),
            ErrorCode::IdentityRequired
        );
    }

    #[test]
    fn an_identity_must_sign_exactly_what_is_sent() {
        let claims = json!({
            "sub": "u-1", "name": "Alex", "email": "alex@example.com",
            "custom": { "plan": "Gold" }, "exp": NOW + 600
        });
        let identity = |t: String, name: &str| {
            request(json!({ "identity": {
                "user_id": "u-1", "name": name, "email": "alex@example.com",
                "custom_data": { "plan": "Gold" }, "token": t
            }}))
        };
        let claim = check_code_request(
            &site(AuthMode::Code),
            &identity(token(&claims), "Alex"),
            NOW,
        )
        .unwrap();
        let user = claim.verified.unwrap();
        assert_eq!(user.user_id, "u-1");
        assert_eq!(user.custom_data["plan"], "Gold");

        let refused = |req: CreateCodeRequest| {
            code(check_code_request(&site(AuthMode::Code), &req, NOW).unwrap_err())
        };
        // A changed field.
        assert_eq!(
            refused(identity(token(&claims), "Mallory")),
            ErrorCode::InvalidIdentity
        );
        // Unsigned, expired, signed with another secret, too long-lived.
        assert_eq!(
            refused(identity(String::new(), "Alex")),
            ErrorCode::InvalidIdentity
        );
        let mut expired = claims.clone();
        expired["exp"] = json!(NOW - 60);
        assert_eq!(
            refused(identity(token(&expired), "Alex")),
            ErrorCode::InvalidIdentity
        );
        let forged = jwt::encode(&claims, b"not the site's secret, but long enough");
        assert_eq!(
            refused(identity(forged, "Alex")),
            ErrorCode::InvalidIdentity
        );
        let mut long = claims.clone();
        long["exp"] = json!(NOW + 86_401);
        assert_eq!(
            refused(identity(token(&long), "Alex")),
            ErrorCode::InvalidIdentity
        );
        // An agent JWT (it names a site) is not an identity.
        let mut agent = claims.clone();
        agent["site"] = json!("demo");
        assert_eq!(
            refused(identity(token(&agent), "Alex")),
            ErrorCode::InvalidIdentity
        );
        // Custom data that is not all strings is not a valid token.
        let mut numbers = claims.clone();
        numbers["custom"] = json!({ "plan": 5 });
        assert_eq!(
            refused(identity(token(&numbers), "Alex")),
            ErrorCode::InvalidIdentity
        );
        // A site without a secret cannot verify anything.
        let mut plain = site(AuthMode::Visitor);
        plain.secret = None;
        let e = check_code_request(&plain, &identity(token(&claims), "Alex"), NOW).unwrap_err();
        assert_eq!(code(e), ErrorCode::InvalidIdentity);
    }

    #[test]
    fn bad_fields_are_named() {
        let s = site(AuthMode::OptionalForm);
        let long = "x".repeat(MAX_TEXT_FIELD + 1);
        let many: BTreeMap<String, String> = (0..=MAX_CUSTOM_FIELDS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let long_key = BTreeMap::from([("k".repeat(MAX_CUSTOM_KEY + 1), "v".to_owned())]);
        let long_value = BTreeMap::from([("plan".to_owned(), long.clone())]);
        let identity = |custom: &BTreeMap<String, String>| json!({ "identity": { "user_id": "u-1", "custom_data": custom, "token": "x.y.z" } });
        for (body, field) in [
            (json!({ "visitor_id": "ABC" }), "visitor_id"),
            (json!({ "visitor": { "name": long } }), "visitor.name"),
            (
                json!({ "visitor": { "email": "not-an-email" } }),
                "visitor.email",
            ),
            (json!({ "visitor": { "name": "a\u{7}b" } }), "visitor.name"),
            (identity(&many), "identity.custom_data"),
            (identity(&long_key), "identity.custom_data"),
            (identity(&long_value), "identity.custom_data.plan"),
            (
                json!({ "identity": { "user_id": " ", "token": "x.y.z" } }),
                "identity.user_id",
            ),
            (
                json!({ "identity": { "user_id": "u", "email": "x", "token": "x.y.z" } }),
                "identity.email",
            ),
            (
                json!({ "visitor": { "name": "Ada" },
                        "identity": { "user_id": "u", "token": "x.y.z" } }),
                "visitor",
            ),
        ] {
            let e = check_code_request(&s, &request(body.clone()), NOW).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidField, "{body}");
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn the_view_names_anonymous_visitors_and_shows_user_ids_only_when_verified() {
        use crate::store::VisitorRecord;
        let record = VisitorRecord {
            id: "r".into(),
            site_key: "demo".into(),
            kind: IdentityKind::Typed,
            visitor_id: None,
            user_id: Some("u-1".into()),
            name: Some("  ".into()),
            email: Some("ada@example.com".into()),
            custom_data: BTreeMap::new(),
            first_seen: utc(2024, 7, 1, 8, 5),
        };
        let v = view(
            VisitorHistory {
                record,
                tickets: vec![],
            },
            &zone("Europe/Paris"),
        );
        assert_eq!(v.display_name, "Web User - 07/01 10:05");
        assert_eq!((v.name, v.user_id, v.custom_data), (None, None, None));
        assert_eq!(v.email.as_deref(), Some("ada@example.com"));
    }
}
