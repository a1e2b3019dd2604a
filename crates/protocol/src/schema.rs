//! What the JSON Schemas say beyond the Rust types (feature `schema`): the
//! shapes and limits the broker enforces on strings, written as JSON Schema
//! so that the OpenAPI document refuses exactly what the broker refuses.
//!
//! The patterns use only `\uXXXX` escapes and character classes, which the
//! ECMA, Python and Rust regex dialects all read the same way.

use schemars::{json_schema, Schema, SchemaGenerator};

use crate::{MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, MAX_TEXT_FIELD};

/// Rust's `char::is_control` (Unicode `Cc`).
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// Rust's `char::is_whitespace` (Unicode `White_Space`), which `str::trim` strips.
const SPACE: &str =
    r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Any text without control characters.
fn no_control() -> String {
    format!("^[^{CONTROL}]*$")
}

/// Text with something other than white space in it, and no control character.
fn not_blank() -> String {
    format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$")
}

/// The broker's `is_email`: one `@` with something before it, a dot inside
/// the domain (not first, not last), no white space or control characters.
fn email_shape() -> String {
    let c = format!("[^@{CONTROL}{SPACE}]");
    let d = format!("[^@.{CONTROL}{SPACE}]");
    format!("{c}+@{d}+\\.{c}*{d}")
}

/// A form field (`visitor.name`): the broker trims white space, takes a
/// blank as absent, and allows at most [`MAX_TEXT_FIELD`] characters
/// without control characters in what is left.
pub fn typed_text(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "pattern": format!("^[{SPACE}]*[^{CONTROL}]{{0,{MAX_TEXT_FIELD}}}[{SPACE}]*$"),
    })
}

/// A form email (`visitor.email`): trimmed and blank-as-absent like
/// [`typed_text`], else an email address.
pub fn typed_email(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "allOf": [
            { "pattern": format!("^[{SPACE}]*[^{CONTROL}]{{0,{MAX_TEXT_FIELD}}}[{SPACE}]*$") },
            { "pattern": format!("^[{SPACE}]*(?:{})?[{SPACE}]*$", email_shape()) },
        ],
    })
}

/// A signed identity's user id: not blank, taken as sent.
pub fn user_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": MAX_TEXT_FIELD,
        "pattern": not_blank(),
    })
}

/// A signed identity's name, taken as sent.
pub fn signed_text(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "maxLength": MAX_TEXT_FIELD,
        "pattern": no_control(),
    })
}

/// A signed identity's email, taken as sent.
pub fn signed_email(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "maxLength": MAX_TEXT_FIELD,
        "pattern": format!("^{}$", email_shape()),
    })
}

/// A signed identity's `custom_data`.
pub fn custom_data(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["object", "null"],
        "maxProperties": MAX_CUSTOM_FIELDS,
        "propertyNames": { "maxLength": MAX_CUSTOM_KEY, "pattern": not_blank() },
        "additionalProperties": { "type": "string", "maxLength": MAX_TEXT_FIELD },
    })
}

/// `len` lowercase hex digits: session ids, device tokens, visitor ids,
/// stream tickets.
pub fn lower_hex(len: usize) -> String {
    format!("^[0-9a-f]{{{len}}}$")
}

/// The widget's anonymous visitor id.
pub fn visitor_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "pattern": lower_hex(32) })
}

/// A session id.
pub fn session_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": lower_hex(32) })
}

/// A device token.
pub fn device_token(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": lower_hex(64) })
}

/// A stream ticket: a 6-byte time and 16 random bytes.
pub fn stream_ticket(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": lower_hex(44) })
}

/// A support code: six ASCII digits.
pub fn code(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": "^[0-9]{6}$" })
}
