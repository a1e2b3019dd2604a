//! Who the visitor is, as the page tells us: `identify()` (the site's
//! logged-in user, signed by the site's server) and the name and email a
//! visitor types (the form, or `createSessionCode({ name, email })`).
//!
//! Checked field by field like the config, so that a mistake names the
//! field at fault before anything is sent. The broker checks again and
//! believes only what the identity's token signs.

use crate::code::decimal;
use crate::error::{Error, Result};
use crate::i18n::Text;
use agent_assist_protocol::{
    Identity, VisitorInfo, MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, MAX_TEXT_FIELD,
};
use js_sys::{Array, Object, Reflect};
use std::collections::BTreeMap;
use wasm_bindgen::{JsCast, JsValue};

const IDENTITY_FIELDS: [&str; 5] = ["userId", "name", "email", "customData", "token"];
/// [`IDENTITY_FIELDS`] for messages, written out (see `config::FIELD_LIST`).
const IDENTITY_FIELD_LIST: &str = "userId, name, email, customData, token";
const VISITOR_FIELDS: [&str; 2] = ["name", "email"];
/// Longest token accepted. A signed identity with the most custom data the
/// protocol allows stays well under it, and the broker's 16 KB body limit
/// would refuse much more with a less helpful error.
const MAX_TOKEN: usize = 8192;

/// Checks the object given to `identify()`.
pub fn identity_from_js(value: &JsValue) -> Result<Identity> {
    let call = "identify()";
    let obj = plain_object(value).ok_or_else(|| {
        bad(
            call,
            "expected an object such as { userId: \"…\", token: \"…\" }",
        )
    })?;
    known_fields(call, obj, &IDENTITY_FIELDS, IDENTITY_FIELD_LIST)?;
    let user_id = text_field(call, obj, "userId", MAX_TEXT_FIELD)?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad(call, "`userId` is required: the user's id on your site"))?;
    let name = text_field(call, obj, "name", MAX_TEXT_FIELD)?;
    let email = text_field(call, obj, "email", MAX_TEXT_FIELD)?;
    if email.as_deref().is_some_and(|e| !is_email(e)) {
        return Err(bad(call, "`email` is not an email address"));
    }
    let custom_data = custom_data(call, obj)?;
    let token = text_field(call, obj, "token", MAX_TOKEN)?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            bad(
                call,
                "`token` is required: the signature your server makes with the site secret",
            )
        })?;
    Ok(Identity {
        user_id,
        name,
        email,
        custom_data,
        token,
    })
}

/// Checks `createSessionCode({ name, email })`; `undefined` or `null` is no
/// visitor data at all.
pub fn visitor_from_js(value: &JsValue) -> Result<Option<VisitorInfo>> {
    let call = "createSessionCode()";
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let obj = plain_object(value)
        .ok_or_else(|| bad(call, "expected an object such as { name, email }"))?;
    known_fields(call, obj, &VISITOR_FIELDS, "name, email")?;
    let name = text_field(call, obj, "name", MAX_TEXT_FIELD)?;
    let email = text_field(call, obj, "email", MAX_TEXT_FIELD)?;
    if email.as_deref().is_some_and(|e| !is_email(e)) {
        return Err(bad(call, "`email` is not an email address"));
    }
    Ok(Some(VisitorInfo { name, email }))
}

/// What is wrong with each field of the form, if anything: the name and the
/// email are both required, the email must look like one.
pub fn check_form(name: &str, email: &str) -> (Option<Text>, Option<Text>) {
    let name_error = name.trim_ascii().is_empty().then_some(Text::NameRequired);
    let email = email.trim_ascii();
    let email_error = if email.is_empty() {
        Some(Text::EmailRequired)
    } else if !is_email(email) || email.chars().count() > MAX_TEXT_FIELD {
        Some(Text::EmailInvalid)
    } else {
        None
    };
    (name_error, email_error)
}

/// A light check that catches typos, not a full address parser: one `@`
/// with something before it, a dot in what follows (neither first nor
/// last), and no spaces or control characters. The mail server is the
/// real judge.
pub fn is_email(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(at) = bytes.iter().position(|&b| b == b'@') else {
        return false;
    };
    let domain = bytes.get(at + 1..).unwrap_or_default();
    at > 0
        && !domain.contains(&b'@')
        && domain
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'.' && i > 0 && i + 1 < domain.len())
        && bytes.iter().all(|&b| b > b' ' && b != 0x7f)
}

fn bad(call: &'static str, message: &str) -> Error {
    Error::Argument {
        call,
        message: message.to_owned(),
    }
}

/// An object, but not an array or a function.
fn plain_object(value: &JsValue) -> Option<&Object> {
    value
        .dyn_ref::<Object>()
        .filter(|_| !value.is_function() && !Array::is_array(value))
}

fn known_fields(call: &'static str, obj: &Object, fields: &[&str], list: &str) -> Result<()> {
    for key in Object::keys(obj).iter() {
        let key = key.as_string().unwrap_or_default();
        if !fields.contains(&key.as_str()) {
            return Err(bad(
                call,
                &["unknown field `", &key, "` (known fields: ", list, ")"].concat(),
            ));
        }
    }
    Ok(())
}

fn get(call: &'static str, obj: &Object, key: &str) -> Result<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .map_err(|_| bad(call, &["`", key, "` could not be read"].concat()))
}

/// A string of at most `max` characters; `undefined`/`null` are "not given".
fn text_field(call: &'static str, obj: &Object, key: &str, max: usize) -> Result<Option<String>> {
    let value = get(call, obj, key)?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let text = value
        .as_string()
        .ok_or_else(|| bad(call, &["`", key, "` must be a string"].concat()))?;
    check_length(call, key, &text, max)?;
    Ok(Some(text))
}

fn check_length(call: &'static str, key: &str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max {
        let max = decimal(u32::try_from(max).unwrap_or(u32::MAX));
        return Err(bad(
            call,
            &["`", key, "` is longer than ", &max, " characters"].concat(),
        ));
    }
    Ok(())
}

/// `customData`: an object of strings, as many entries and as long as the
/// protocol allows.
fn custom_data(call: &'static str, obj: &Object) -> Result<Option<BTreeMap<String, String>>> {
    let value = get(call, obj, "customData")?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let data = plain_object(&value)
        .ok_or_else(|| bad(call, "`customData` must be an object of strings"))?;
    let keys = Object::keys(data);
    if keys.length() as usize > MAX_CUSTOM_FIELDS {
        let max = decimal(MAX_CUSTOM_FIELDS as u32);
        return Err(bad(
            call,
            &["`customData` has more than ", &max, " entries"].concat(),
        ));
    }
    let mut out = BTreeMap::new();
    for key in keys.iter() {
        let key = key.as_string().unwrap_or_default();
        let field = ["customData.", &key].concat();
        if key.is_empty() || key.chars().count() > MAX_CUSTOM_KEY {
            let max = decimal(MAX_CUSTOM_KEY as u32);
            return Err(bad(
                call,
                &["`customData` keys must be 1 to ", &max, " characters long"].concat(),
            ));
        }
        let text = get(call, data, &key)?
            .as_string()
            .ok_or_else(|| bad(call, &["`", &field, "` must be a string"].concat()))?;
        check_length(call, &field, &text, MAX_TEXT_FIELD)?;
        out.insert(key, text);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_list_in_messages_names_every_accepted_field() {
        assert_eq!(IDENTITY_FIELD_LIST, IDENTITY_FIELDS.join(", "));
    }

    #[test]
    fn emails_need_one_at_a_dot_after_it_and_no_spaces() {
        for good in [
            "jo@example.com",
            "a@b.c",
            "jo.visitor+tag@mail.example.co.uk",
            "zoë@exämple.fr",
        ] {
            assert!(is_email(good), "{good}");
        }
        for typo in [
            "",
            "jo",
            "jo@example",
            "@example.com",
            "jo@@example.com",
            "jo@ex@ample.com",
            "jo@.com",
            "jo@example.",
            "jo @example.com",
            "jo@example.com ",
            "jo@exa\tmple.com",
        ] {
            assert!(!is_email(typo), "{typo:?}");
        }
    }

    #[test]
    fn the_form_requires_a_name_and_a_real_looking_email() {
        assert_eq!(
            check_form("", ""),
            (Some(Text::NameRequired), Some(Text::EmailRequired))
        );
        assert_eq!(
            check_form("   ", "jo@example"),
            (Some(Text::NameRequired), Some(Text::EmailInvalid))
        );
        assert_eq!(check_form("Jo", " jo@example.com "), (None, None));
        let long = ["a@b.", &"c".repeat(MAX_TEXT_FIELD)].concat();
        assert_eq!(check_form("Jo", &long).1, Some(Text::EmailInvalid));
    }
}
