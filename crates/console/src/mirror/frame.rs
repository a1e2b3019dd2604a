//! Reads the broker's frames ([`View`]) out of parsed JSON.
//!
//! By hand rather than with serde: `View` and [`Op`] are tagged inside the
//! object (`"t"`, `"o"`), which serde's derive reads by buffering each
//! frame into an intermediate tree, and that machinery plus one visitor
//! per type would make the console's wasm half as large again. The types
//! are still the protocol's, and the rules are the derive's: unknown
//! fields refuse a page, a node, a box or an op (`deny_unknown_fields`), a field
//! of the wrong type refuses the frame, a missing optional one is its
//! default. A web test holds the two readers to the same answers.

use agent_assist_protocol::mirror::{Node, Ns, Op, Page, Redacted, View};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

const PAGE_FIELDS: &[&str] = &["t", "url", "title", "w", "h", "x", "y", "nodes", "sheets"];
const NODE_FIELDS: &[&str] = &["i", "p", "e", "ns", "a", "x", "v", "c", "r"];
const REDACTED_FIELDS: &[&str] = &["w", "h", "b"];

/// The frame in `json` (what `JSON.parse` made of it), if it is one.
pub fn read_view(json: JsValue) -> Option<View> {
    object(&json)?;
    match get(&json, "t").as_string()?.as_str() {
        "page" => read_page(&json).map(View::Page),
        "hidden" => Some(View::Hidden),
        "presence" => get(&json, "online")
            .as_bool()
            .map(|online| View::Presence { online }),
        "ops" => {
            let ops = list(&get(&json, "ops"), read_op)?;
            Some(View::Ops { ops })
        }
        _ => None,
    }
}

fn read_page(json: &JsValue) -> Option<Page> {
    only(json, PAGE_FIELDS)?;
    Some(Page {
        url: string(json, "url")?,
        title: string(json, "title")?,
        w: uint(json, "w")?,
        h: uint(json, "h")?,
        x: int(json, "x")?,
        y: int(json, "y")?,
        nodes: list(&get(json, "nodes"), read_node)?,
        sheets: defaulted(get(json, "sheets"), |s| list(s, JsValue::as_string))?,
    })
}

fn read_node(json: &JsValue) -> Option<Node> {
    object(json)?;
    only(json, NODE_FIELDS)?;
    Some(Node {
        i: uint(json, "i")?,
        p: uint(json, "p")?,
        e: optional(get(json, "e"), JsValue::as_string)?,
        ns: defaulted(get(json, "ns"), |ns| match ns.as_string()?.as_str() {
            "html" => Some(Ns::Html),
            "svg" => Some(Ns::Svg),
            "math" => Some(Ns::Math),
            _ => None,
        })?,
        a: defaulted(get(json, "a"), |a| list(a, read_attribute))?,
        x: optional(get(json, "x"), JsValue::as_string)?,
        v: optional(get(json, "v"), JsValue::as_string)?,
        c: optional(get(json, "c"), JsValue::as_bool)?,
        r: optional(get(json, "r"), read_redacted)?,
    })
}

fn read_attribute(pair: &JsValue) -> Option<(String, String)> {
    let pair = pair.dyn_ref::<Array>()?;
    (pair.length() == 2).then_some(())?;
    Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
}

fn read_redacted(json: &JsValue) -> Option<Redacted> {
    object(json)?;
    only(json, REDACTED_FIELDS)?;
    Some(Redacted {
        w: uint(json, "w")?,
        h: uint(json, "h")?,
        b: defaulted(get(json, "b"), JsValue::as_bool)?,
    })
}

fn read_op(op: &JsValue) -> Option<Op> {
    let i = || uint(op, "i");
    let x = || int(op, "x");
    let y = || int(op, "y");
    object(op)?;
    let kind = get(op, "o").as_string()?;
    let fields: &[&str] = match kind.as_str() {
        "kids" => &["o", "i", "c", "n"],
        "attr" => &["o", "i", "k", "v"],
        "text" => &["o", "i", "x"],
        "value" => &["o", "i", "v", "c"],
        "scroll" => &["o", "i", "x", "y"],
        "viewport" => &["o", "w", "h"],
        "pointer" | "click" => &["o", "x", "y"],
        _ => return None,
    };
    only(op, fields)?;
    Some(match kind.as_str() {
        "kids" => Op::Kids {
            i: i()?,
            c: list(&get(op, "c"), |id| as_uint(id.as_f64()?))?,
            n: list(&get(op, "n"), read_node)?,
        },
        "attr" => Op::Attr {
            i: i()?,
            k: string(op, "k")?,
            v: optional(get(op, "v"), JsValue::as_string)?,
        },
        "text" => Op::Text {
            i: i()?,
            x: string(op, "x")?,
        },
        "value" => Op::Value {
            i: i()?,
            v: optional(get(op, "v"), JsValue::as_string)?,
            c: optional(get(op, "c"), JsValue::as_bool)?,
        },
        "scroll" => Op::Scroll {
            i: i()?,
            x: x()?,
            y: y()?,
        },
        "viewport" => Op::Viewport {
            w: uint(op, "w")?,
            h: uint(op, "h")?,
        },
        "pointer" => Op::Pointer { x: x()?, y: y()? },
        "click" => Op::Click { x: x()?, y: y()? },
        _ => return None,
    })
}

/// `Some` if `json` is a plain object (not an array, string or number).
fn object(json: &JsValue) -> Option<()> {
    (json.is_object() && !Array::is_array(json)).then_some(())
}

/// `Some` if `json` has no field but `fields`.
fn only(json: &JsValue, fields: &[&str]) -> Option<()> {
    let keys = Object::keys(json.unchecked_ref::<Object>());
    keys.iter()
        .all(|k| k.as_string().is_some_and(|k| fields.contains(&k.as_str())))
        .then_some(())
}

fn get(json: &JsValue, key: &str) -> JsValue {
    Reflect::get(json, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn string(json: &JsValue, key: &str) -> Option<String> {
    get(json, key).as_string()
}

/// Each item of the array `json`, read by `read`; `None` if any fails.
fn list<T>(json: &JsValue, read: impl Fn(&JsValue) -> Option<T>) -> Option<Vec<T>> {
    let array = json.dyn_ref::<Array>()?;
    array.iter().map(|item| read(&item)).collect()
}

/// An `Option` field: `None` when missing or null.
fn optional<T>(value: JsValue, read: impl Fn(&JsValue) -> Option<T>) -> Option<Option<T>> {
    if value.is_null() || value.is_undefined() {
        Some(None)
    } else {
        read(&value).map(Some)
    }
}

/// A field with a default: the default when missing (null is wrong).
fn defaulted<T: Default>(value: JsValue, read: impl Fn(&JsValue) -> Option<T>) -> Option<T> {
    if value.is_undefined() {
        Some(T::default())
    } else {
        read(&value)
    }
}

fn uint(json: &JsValue, key: &str) -> Option<u32> {
    as_uint(get(json, key).as_f64()?)
}

fn as_uint(n: f64) -> Option<u32> {
    (n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n)).then_some(n as u32)
}

fn int(json: &JsValue, key: &str) -> Option<i32> {
    let n = get(json, key).as_f64()?;
    (n.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&n))
        .then_some(n as i32)
}
