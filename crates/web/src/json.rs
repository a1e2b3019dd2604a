//! A small serde `Serializer` writing compact JSON into a `String`, the same
//! bytes `serde_json::to_string` writes for the protocol's types.
//!
//! `serde_json` is not linked into the wasm (STYLE.md): its writer brings
//! `io::Write` plumbing, a float formatter and descriptive errors. The wire
//! types carry no floats, so this serializer refuses them rather than link
//! float formatting, and its error, like `js_de::ShapeError`, formats no
//! message. Integers are written by a short hand-written routine.
//!
//! Supported: structs (including internally tagged enums, which serde
//! writes as a struct or map with the tag as first field), unit, newtype,
//! tuple and struct variants, `Option`, sequences, tuples, maps whose keys
//! are strings, chars, booleans or integers (written quoted, as
//! `serde_json` does), booleans, integers up to 64 bits, chars and strings.

use serde::ser::{self, Impossible, Serialize};

/// The value holds something JSON cannot carry here: a float, a 128-bit
/// integer, or a map key that is not a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("value cannot be written as JSON")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: core::fmt::Display>(_msg: T) -> Self {
        // Deliberately not formatted: see the module comment.
        Unsupported
    }
}

/// `value` as compact JSON.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Unsupported> {
    let mut out = String::new();
    write(&mut out, value)?;
    Ok(out)
}

/// Appends `value` as compact JSON to `out`. On error, `out` holds a part
/// of the value.
pub fn write<T: Serialize + ?Sized>(out: &mut String, value: &T) -> Result<(), Unsupported> {
    value.serialize(Json { out })
}

type Result<T = (), E = Unsupported> = core::result::Result<T, E>;

/// Writes `s` as a JSON string: `"` and `\` escaped, control characters as
/// `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, everything else (non-ASCII,
/// U+2028 and U+2029 included) as it is.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'\n' => 'n',
            b'\r' => 'r',
            b'\t' => 't',
            0x08 => 'b',
            0x0c => 'f',
            0..=0x1f => 'u',
            _ => continue,
        };
        // Escaped bytes are ASCII, so `start` and `i` are char boundaries
        // and `get` always succeeds (without a panicking slice).
        if let Some(run) = s.get(start..i) {
            out.push_str(run);
        }
        start = i + 1;
        out.push('\\');
        out.push(short);
        if short == 'u' {
            out.push_str("00");
            out.push(hex(b >> 4));
            out.push(hex(b & 0xf));
        }
    }
    if let Some(run) = s.get(start..) {
        out.push_str(run);
    }
    out.push('"');
}

/// A lowercase hex digit, as `serde_json` writes them; `n` < 16.
fn hex(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' - 10 + n })
}

/// Writes `n` in decimal: the higher digits first, by recursion (at most
/// 20 deep), so no buffer or index is needed.
fn write_u64(out: &mut String, n: u64) {
    if n >= 10 {
        write_u64(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

fn write_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    write_u64(out, n.unsigned_abs());
}

/// The serializer proper: writes one value into `out`.
struct Json<'a> {
    out: &'a mut String,
}

/// A sequence, map or struct being written. `first`: no element written
/// yet (no comma before the next). `variant`: the value is wrapped in
/// `{"variant": …}`, so one more `}` closes it.
struct Compound<'a> {
    out: &'a mut String,
    first: bool,
    variant: bool,
}

impl<'a> Compound<'a> {
    fn open(out: &'a mut String, bracket: char, variant: Option<&str>) -> Compound<'a> {
        if let Some(name) = variant {
            out.push('{');
            write_str(out, name);
            out.push(':');
        }
        out.push(bracket);
        Compound {
            out,
            first: true,
            variant: variant.is_some(),
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(Json { out: self.out })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        self.comma();
        write_str(self.out, key);
        self.out.push(':');
        value.serialize(Json { out: self.out })
    }

    fn close(self, bracket: char) -> Result {
        self.out.push(bracket);
        if self.variant {
            self.out.push('}');
        }
        Ok(())
    }
}

impl<'a> ser::Serializer for Json<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result {
        write_i64(self.out, v);
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result {
        write_u64(self.out, v);
        Ok(())
    }

    fn serialize_f32(self, _v: f32) -> Result {
        Err(Unsupported)
    }

    fn serialize_f64(self, _v: f64) -> Result {
        Err(Unsupported)
    }

    fn serialize_char(self, v: char) -> Result {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result {
        write_str(self.out, v);
        Ok(())
    }

    /// An array of numbers, as `serde_json` writes bytes.
    fn serialize_bytes(self, v: &[u8]) -> Result {
        let mut seq = Compound::open(self.out, '[', None);
        for b in v {
            seq.element(b)?;
        }
        seq.close(']')
    }

    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.out.push_str("null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        let mut map = Compound::open(self.out, '{', None);
        map.field(variant, value)?;
        map.close('}')
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '[', None))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '[', None))
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '[', None))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '[', Some(variant)))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '{', None))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '{', None))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, '{', Some(variant)))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }

    fn end(self) -> Result {
        self.close(']')
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }

    fn end(self) -> Result {
        self.close(']')
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }

    fn end(self) -> Result {
        self.close(']')
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }

    fn end(self) -> Result {
        self.close(']')
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(Key { out: self.out })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.out.push(':');
        value.serialize(Json { out: self.out })
    }

    fn end(self) -> Result {
        self.close('}')
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }

    fn end(self) -> Result {
        self.close('}')
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }

    fn end(self) -> Result {
        self.close('}')
    }
}

/// A map key: JSON keys are strings, so booleans and integers are quoted.
struct Key<'a> {
    out: &'a mut String,
}

impl Key<'_> {
    fn quoted(self, write: impl FnOnce(&mut String)) -> Result {
        self.out.push('"');
        write(self.out);
        self.out.push('"');
        Ok(())
    }
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(|out| out.push_str(if v { "true" } else { "false" }))
    }

    fn serialize_i8(self, v: i8) -> Result {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result {
        self.quoted(|out| write_i64(out, v))
    }

    fn serialize_u8(self, v: u8) -> Result {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result {
        self.quoted(|out| write_u64(out, v))
    }

    fn serialize_f32(self, _v: f32) -> Result {
        Err(Unsupported)
    }

    fn serialize_f64(self, _v: f64) -> Result {
        Err(Unsupported)
    }

    fn serialize_char(self, v: char) -> Result {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result {
        Err(Unsupported)
    }

    fn serialize_none(self) -> Result {
        Err(Unsupported)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result {
        Err(Unsupported)
    }

    fn serialize_unit(self) -> Result {
        Err(Unsupported)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        Err(Unsupported)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result {
        Err(Unsupported)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(Unsupported)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        Err(Unsupported)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(Unsupported)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(Unsupported)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(Unsupported)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Err(Unsupported)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_assist_protocol::mirror::{
        Down, Node, Ns, Op, Page, Redacted, Up, View, ViewerHello,
    };
    use serde::de::DeserializeOwned;
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    /// Strings a page can hold that JSON must escape, or must not.
    const AWKWARD: &[&str] = &[
        "",
        "plain",
        "\"quoted\"",
        "back\\slash\\",
        "\\\"",
        "line\nbreak\r\ntab\there",
        "\u{0}\u{1}\u{7}\u{8}\u{b}\u{c}\u{e}\u{1f}\u{7f}",
        "emoji 🙂👩‍👩‍👧 and ünïcödé, 中文",
        "line\u{2028}para\u{2029}end",
        "</script><!-- & ' `",
        "\u{feff}bom \u{fffd} \u{10ffff}",
    ];

    /// Same bytes as `serde_json`, and `serde_json` reads back an equal value.
    fn same<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
        let ours = to_string(value).unwrap();
        let theirs = serde_json::to_string(value).unwrap();
        assert_eq!(ours, theirs);
        let back: T = serde_json::from_str(&ours).unwrap();
        assert_eq!(&back, value);
    }

    fn node(i: u32, s: &str) -> Node {
        Node {
            i,
            p: u32::MAX,
            e: Some(s.into()),
            ns: Ns::Svg,
            a: vec![(s.into(), s.into()), ("class".into(), String::new())],
            x: Some(s.into()),
            v: Some(s.into()),
            c: Some(i % 2 == 0),
            r: Some(Redacted {
                w: u32::MAX,
                h: 0,
                b: true,
            }),
        }
    }

    fn ops(s: &str) -> Vec<Op> {
        vec![
            Op::Kids {
                i: 1,
                c: vec![],
                n: vec![],
            },
            Op::Kids {
                i: u32::MAX,
                c: vec![0, 7, u32::MAX],
                n: vec![node(2, s), Node::default()],
            },
            Op::Attr {
                i: 3,
                k: s.into(),
                v: Some(s.into()),
            },
            Op::Attr {
                i: 3,
                k: s.into(),
                v: None,
            },
            Op::Text { i: 4, x: s.into() },
            Op::Value {
                i: 5,
                v: Some(s.into()),
                c: Some(true),
            },
            Op::Value {
                i: 5,
                v: None,
                c: None,
            },
            Op::Scroll {
                i: 0,
                x: i32::MIN,
                y: i32::MAX,
            },
            Op::Viewport { w: u32::MAX, h: 0 },
            Op::Pointer { x: -1, y: 0 },
            Op::Click { x: -10, y: 10 },
        ]
    }

    fn page(s: &str) -> Page {
        Page {
            url: s.into(),
            title: s.into(),
            w: 0,
            h: u32::MAX,
            x: i32::MIN,
            y: -1,
            nodes: vec![Node::default(), node(1, s), node(2, s)],
            sheets: vec![s.into(), String::new()],
        }
    }

    #[test]
    fn every_frame_is_written_as_serde_json_writes_it() {
        for &s in AWKWARD {
            same(&Up::Hello { token: s.into() });
            same(&Up::Page(page(s)));
            same(&Up::Page(Page {
                sheets: vec![],
                nodes: vec![],
                ..page(s)
            }));
            same(&Up::Hidden);
            same(&Up::Ops { ops: vec![] });
            same(&Up::Ops { ops: ops(s) });
            same(&Down::Welcome {
                pages: vec![s.into(), "/*".into()],
            });
            same(&Down::Welcome { pages: vec![] });
            same(&Down::Resync);
            same(&ViewerHello::Hello { token: s.into() });
            same(&View::Page(page(s)));
            same(&View::Hidden);
            same(&View::Ops { ops: ops(s) });
            same(&View::Presence { online: true });
            same(&View::Presence { online: false });
            for op in ops(s) {
                same(&op);
            }
        }
    }

    #[test]
    fn every_control_character_is_escaped_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).collect();
        same(&all);
        for c in (0u32..0x300).filter_map(char::from_u32) {
            same(&c.to_string());
            same(&c);
        }
    }

    #[test]
    fn plain_serde_shapes_match_serde_json() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        enum Shape {
            Unit,
            Newtype(Option<u8>),
            Tuple(i8, String),
            Struct { a: Vec<Option<Option<bool>>> },
        }
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Wrapper(u16);
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Pair(i16, Wrapper);
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Empty;

        same(&vec![
            Shape::Unit,
            Shape::Newtype(None),
            Shape::Newtype(Some(255)),
            Shape::Tuple(-128, "\"".into()),
            Shape::Struct {
                a: vec![None, Some(Some(true)), Some(Some(false))],
            },
            Shape::Struct { a: vec![] },
        ]);
        same(&(Pair(i16::MIN, Wrapper(u16::MAX)), Empty, ()));
        same(&Some(Some(u64::MAX)));
        same(&(i64::MIN, i64::MAX, 0u64, -0i32, i32::MIN, u32::MAX));
        same(&(u8::MAX, i8::MIN, 'x', '"', '\u{2028}', '🙂'));
        same(&vec![(String::from("k"), String::from("v")); 3]);
        let mut map = BTreeMap::new();
        map.insert(String::from("a\"b"), vec![1u32, 2]);
        map.insert(String::new(), vec![]);
        same(&map);
        let mut numbered = BTreeMap::new();
        numbered.insert(-3i32, String::from("minus three"));
        numbered.insert(10, String::from("ten"));
        same(&numbered);
        same(&BTreeMap::<String, bool>::new());
        for n in [0u64, 9, 10, 99, 100, 12345, 1 << 53, u64::MAX] {
            same(&n);
            same(&(n as i64));
        }
        let bytes = Bytes(b"\x00\x7f\xff");
        assert_eq!(
            to_string(&bytes),
            serde_json::to_string(&bytes).map_err(|_| Unsupported)
        );
        assert_eq!(to_string(&bytes).unwrap(), "[0,127,255]");
    }

    /// A value serialised with `serialize_bytes`.
    struct Bytes(&'static [u8]);

    impl Serialize for Bytes {
        fn serialize<S: ser::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[test]
    fn floats_and_non_string_keys_are_refused() {
        assert_eq!(to_string(&1.5f64), Err(Unsupported));
        assert_eq!(to_string(&vec![0.0f32]), Err(Unsupported));
        let mut map = BTreeMap::new();
        map.insert(vec![1u8], 1u8);
        assert_eq!(to_string(&map), Err(Unsupported));
        assert_eq!(to_string(&u128::MAX), Err(Unsupported));
    }

    #[test]
    fn write_appends() {
        let mut out = String::from("x");
        write(&mut out, &Up::Hidden).unwrap();
        assert_eq!(out, r#"x{"t":"hidden"}"#);
    }
}
