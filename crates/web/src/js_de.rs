//! A small serde `Deserializer` over a `JsValue`, for the broker's answers.
//!
//! `serde-wasm-bindgen`'s deserializer builds descriptive error messages,
//! and formatting them links Rust's float formatting into the wasm — the
//! largest single function of the bundle. The broker's answers either have
//! the protocol's shape or the call failed; which field was off helps no
//! visitor. So this deserializer's error carries no message, nothing is
//! formatted, and the protocol types still come from `crates/protocol`.

use js_sys::{Array, Object, Reflect};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use wasm_bindgen::{JsCast, JsValue};

/// The answer did not have the expected shape.
#[derive(Debug)]
pub struct ShapeError;

impl core::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unexpected answer shape")
    }
}

impl std::error::Error for ShapeError {}

impl de::Error for ShapeError {
    fn custom<T: core::fmt::Display>(_msg: T) -> Self {
        // Deliberately not formatted: see the module comment.
        ShapeError
    }
}

/// Reads a protocol type out of a parsed JSON value.
pub fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, ShapeError> {
    T::deserialize(JsDe(value))
}

struct JsDe(JsValue);

/// Largest integer a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

impl<'de> de::Deserializer<'de> for JsDe {
    type Error = ShapeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        let v = self.0;
        if let Some(s) = v.as_string() {
            visitor.visit_string(s)
        } else if let Some(n) = v.as_f64() {
            if n.fract() == 0.0 && (0.0..=MAX_SAFE).contains(&n) {
                visitor.visit_u64(n as u64)
            } else if n.fract() == 0.0 && (-MAX_SAFE..0.0).contains(&n) {
                visitor.visit_i64(n as i64)
            } else {
                visitor.visit_f64(n)
            }
        } else if let Some(b) = v.as_bool() {
            visitor.visit_bool(b)
        } else if v.is_null() || v.is_undefined() {
            visitor.visit_unit()
        } else if let Some(array) = v.dyn_ref::<Array>() {
            visitor.visit_seq(Seq {
                items: array.iter().collect::<Vec<_>>().into_iter(),
            })
        } else if let Some(obj) = v.dyn_ref::<Object>() {
            let keys = Object::keys(obj)
                .iter()
                .filter_map(|k| k.as_string())
                .collect::<Vec<_>>();
            visitor.visit_map(Map {
                obj: obj.clone(),
                keys: keys.into_iter(),
                value: JsValue::UNDEFINED,
            })
        } else {
            Err(ShapeError)
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        if self.0.is_null() || self.0.is_undefined() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        // The protocol's enums are all unit variants written as strings.
        let s = self.0.as_string().ok_or(ShapeError)?;
        visitor.visit_enum(IntoDeserializer::<ShapeError>::into_deserializer(s))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
        map struct identifier ignored_any
    }
}

struct Seq {
    items: std::vec::IntoIter<JsValue>,
}

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = ShapeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ShapeError> {
        self.items
            .next()
            .map(|v| seed.deserialize(JsDe(v)))
            .transpose()
    }
}

struct Map {
    obj: Object,
    keys: std::vec::IntoIter<String>,
    value: JsValue,
}

impl<'de> de::MapAccess<'de> for Map {
    type Error = ShapeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ShapeError> {
        let Some(key) = self.keys.next() else {
            return Ok(None);
        };
        self.value = Reflect::get(&self.obj, &JsValue::from_str(&key)).map_err(|_| ShapeError)?;
        seed.deserialize(IntoDeserializer::<ShapeError>::into_deserializer(key))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ShapeError> {
        seed.deserialize(JsDe(std::mem::replace(&mut self.value, JsValue::UNDEFINED)))
    }
}
