//! A large JSON body held compactly: parsed, checked and handed over without a
//! heap value per number and a map per object.
//!
//! `serde_json::Value` keeps each number's text (`arbitrary_precision`, for
//! exact Python ints) in a string of its own: a 10 MB body of numbers costs
//! about 200 MB as a `Value`. A [`Document`] holds one kind byte and one 8-byte
//! word per value, with every string in one buffer. Values are stored in
//! document order (an object's keys before their values); a container's word
//! holds its count and where its last descendant ends, so that siblings are
//! reached by skipping. It is checked against JSON Schema in place
//! ([`DocumentJson`] is a `jsonschema` representation) and read by the binding
//! through [`Node::view`].

mod build;
mod schema;

use std::fmt;

use serde_json::{Map, Number, Value};

pub use schema::{DocumentJson, DocumentNumber};

/// The lower half of a word: a string's length, a container's end.
const LOW_HALF: u64 = 0xFFFF_FFFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Null,
    False,
    True,
    /// Word: the `i64`'s bits.
    Int,
    /// Word: a `u64` above `i64::MAX`.
    UInt,
    /// Word: the `f64`'s bits (a finite number written with a fraction or exponent).
    Float,
    /// Word: a span of `text` holding a number no primitive holds (an integer
    /// beyond 64 bits, a float beyond `f64`), or `-0` (an int 0, a float -0.0).
    Digits,
    /// Word: a span of `text` (offset above, length below).
    Str,
    /// Word: the count of items (above) and the index past the last descendant (below).
    Array,
    /// Word: the count of members (above) and the index past the last descendant (below).
    Object,
}

/// A parsed JSON value, compactly (see the module's documentation).
#[derive(Default)]
pub struct Document {
    kinds: Vec<Kind>,
    words: Vec<u64>,
    text: String,
    /// Some object may repeat a key (by a hash of its keys: perhaps).
    repeated_keys: bool,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Document({} values)", self.kinds.len())
    }
}

impl Document {
    /// The largest input a document takes: positions are 32-bit.
    pub const MAX_INPUT: usize = u32::MAX as usize;

    /// Parses `bytes`, at most [`Document::MAX_INPUT`] of them, as one JSON value.
    pub fn parse(bytes: &[u8]) -> Result<Document, serde_json::Error> {
        assert!(
            bytes.len() <= Self::MAX_INPUT,
            "a document holds at most 4 GiB"
        );
        let mut document = build::build(bytes)?;
        document.kinds.shrink_to_fit();
        document.words.shrink_to_fit();
        document.text.shrink_to_fit();
        Ok(document)
    }

    pub fn root(&self) -> Node<'_> {
        Node { doc: self, at: 0 }
    }

    /// Whether an object of it may repeat a key. Its members are then as
    /// received, where a `Value` keeps each key once (the last value, in the
    /// first place): such a document is read as a `Value` instead.
    pub fn may_repeat_keys(&self) -> bool {
        self.repeated_keys
    }

    /// The document as a `Value`, for the rare paths that need one (the
    /// errors of an invalid body).
    pub fn to_value(&self) -> Value {
        self.root().to_json()
    }

    fn push(&mut self, kind: Kind, word: u64) {
        self.kinds.push(kind);
        self.words.push(word);
    }

    /// Appends `text` to the buffer; its span's word.
    fn store(&mut self, text: &str) -> u64 {
        let offset = self.text.len() as u64;
        self.text.push_str(text);
        offset << 32 | text.len() as u64
    }

    /// The text a span's word (made by [`Document::store`]) stands for.
    fn spanned(&self, word: u64) -> &str {
        let offset = (word >> 32) as usize;
        &self.text[offset..offset + (word & LOW_HALF) as usize]
    }
}

/// One value of a document; cheap to copy.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    doc: &'a Document,
    at: u32,
}

/// What a node holds.
pub enum View<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A number no primitive holds (or `-0`), as written.
    Digits(&'a str),
    Str(&'a str),
    Array(Items<'a>),
    Object(Members<'a>),
}

impl<'a> Node<'a> {
    fn kind(self) -> Kind {
        self.doc.kinds[self.at as usize]
    }

    fn word(self) -> u64 {
        self.doc.words[self.at as usize]
    }

    fn text(self) -> &'a str {
        self.doc.spanned(self.word())
    }

    /// The index past this value and its descendants: its next sibling's.
    fn end(self) -> u32 {
        match self.kind() {
            Kind::Array | Kind::Object => (self.word() & LOW_HALF) as u32,
            _ => self.at + 1,
        }
    }

    fn count(self) -> u32 {
        (self.word() >> 32) as u32
    }

    fn children(self) -> Items<'a> {
        Items {
            doc: self.doc,
            next: self.at + 1,
            left: self.count(),
        }
    }

    pub fn view(self) -> View<'a> {
        match self.kind() {
            Kind::Null => View::Null,
            Kind::False => View::Bool(false),
            Kind::True => View::Bool(true),
            Kind::Int => View::Int(self.word() as i64),
            Kind::UInt => View::UInt(self.word()),
            Kind::Float => View::Float(f64::from_bits(self.word())),
            Kind::Digits => View::Digits(self.text()),
            Kind::Str => View::Str(self.text()),
            Kind::Array => View::Array(self.children()),
            Kind::Object => View::Object(Members(self.children())),
        }
    }

    fn to_json(self) -> Value {
        match self.view() {
            View::Null => Value::Null,
            View::Bool(flag) => Value::Bool(flag),
            View::Int(int) => Value::from(int),
            View::UInt(int) => Value::from(int),
            View::Float(float) => Number::from_f64(float).map_or(Value::Null, Value::Number),
            View::Digits(text) => text.parse::<Number>().map_or(Value::Null, Value::Number),
            View::Str(text) => Value::String(text.to_owned()),
            View::Array(items) => Value::Array(items.map(Node::to_json).collect()),
            View::Object(members) => {
                let map: Map<String, Value> = members
                    .map(|(key, value)| (key.to_owned(), value.to_json()))
                    .collect();
                Value::Object(map)
            }
        }
    }
}

/// An array's items, in order.
#[derive(Clone)]
pub struct Items<'a> {
    doc: &'a Document,
    next: u32,
    left: u32,
}

impl<'a> Iterator for Items<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        if self.left == 0 {
            return None;
        }
        let node = Node {
            doc: self.doc,
            at: self.next,
        };
        self.next = node.end();
        self.left -= 1;
        Some(node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Items<'_> {}

/// An object's members (key, value), in the order received.
#[derive(Clone)]
pub struct Members<'a>(Items<'a>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<(&'a str, Node<'a>)> {
        let Items { doc, next, left } = &mut self.0;
        if *left == 0 {
            return None;
        }
        let key = Node { doc, at: *next };
        let value = Node { doc, at: *next + 1 };
        *next = value.end();
        *left -= 1;
        Some((key.text(), value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Members<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonschema::json::{Json, Object};
    use serde_json::json;

    fn parse(text: &str) -> Document {
        Document::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn every_json_value_reads_back_as_serde_json_reads_it() {
        let texts = [
            "null",
            "true",
            "[]",
            "{}",
            r#""h\u00e9llo \"x\"""#,
            "[1, -2, 0, 9223372036854775807, 9223372036854775808, 18446744073709551616]",
            "[1.5, -0.0, 1e2, 2E-3, 1.0, 1e400, -123456789012345678901234567890]",
            r#"{"a": {"b": [1, {"c": null}, []], "d": {}}, "e": "f", "a2": [[[]]]}"#,
            r#"{"$serde_json::private::Number": "12"}"#,
            r#"{"x": 1, "$serde_json::private::Number": "12"}"#,
            r#"[{"": ""}, {"k": "v", "k": "w"}]"#,
        ];
        for text in texts {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                canonical(parse(text).to_value()),
                canonical(expected),
                "{text}"
            );
        }
    }

    /// Numbers as Python reads them (`1e2` and `1E+2` are one float), as text.
    fn canonical(value: Value) -> Value {
        match value {
            Value::Number(number) => {
                let text = number.as_str();
                Value::String(match text.contains(['.', 'e', 'E']) {
                    true => format!("float {:?}", text.parse::<f64>().unwrap()),
                    false => format!("int {text}"),
                })
            }
            Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, canonical(v))).collect())
            }
            other => other,
        }
    }

    #[test]
    fn numbers_are_held_as_python_reads_them() {
        let document =
            parse("[1, -5, 18446744073709551615, 1e2, 1.5, 123456789012345678901234567890, 1e400]");
        let View::Array(items) = document.root().view() else {
            panic!("an array")
        };
        let kinds: Vec<String> = items
            .map(|item| match item.view() {
                View::Int(int) => format!("int {int}"),
                View::UInt(int) => format!("uint {int}"),
                View::Float(float) => format!("float {float}"),
                View::Digits(text) => format!("digits {text}"),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "int 1",
                "int -5",
                "uint 18446744073709551615",
                "float 100",
                "float 1.5",
                "digits 123456789012345678901234567890",
                "digits 1e+400"
            ]
        );
    }

    #[test]
    fn malformed_json_is_refused_as_serde_json_refuses_it() {
        let imitations = [
            r#"{"$serde_json::private::Number": "abc"}"#,
            r#"{"$serde_json::private::Number": "1_000"}"#,
            r#"{"$serde_json::private::Number": 5}"#,
        ];
        for text in ["", "[1,", "{\"a\" 1}", "[1] [2]", "nul", "[1e]"]
            .into_iter()
            .chain(imitations)
        {
            let ours = Document::parse(text.as_bytes())
                .err()
                .map(|e| e.to_string());
            let theirs = serde_json::from_str::<Value>(text)
                .err()
                .map(|e| e.to_string());
            assert_eq!(ours, theirs, "{text}");
            assert!(ours.is_some());
        }
    }

    #[test]
    fn an_object_that_may_repeat_a_key_is_told() {
        assert!(!parse(r#"{"a": {"a": 1, "b": [{"a": 2}]}, "b": 3}"#).may_repeat_keys());
        assert!(parse(r#"[{"x": 1}, {"k": 1, "j": 2, "k": 3}]"#).may_repeat_keys());
        let wide: Vec<String> = (0..1000).map(|n| format!("\"k{n}\": {n}")).collect();
        assert!(!parse(&format!("{{{}}}", wide.join(","))).may_repeat_keys());
        let repeated = format!("{{{}, \"k500\": 0}}", wide.join(","));
        assert!(parse(&repeated).may_repeat_keys());
    }

    #[test]
    fn minus_zero_is_kept_as_written() {
        let document = parse("[-0, -0.0, 0]");
        let View::Array(mut items) = document.root().view() else {
            panic!("an array")
        };
        assert!(matches!(items.next().unwrap().view(), View::Digits("-0")));
        assert!(
            matches!(items.next().unwrap().view(), View::Float(f) if f == 0.0 && f.is_sign_negative())
        );
        assert!(matches!(items.next().unwrap().view(), View::Int(0)));
    }

    #[test]
    fn siblings_after_nested_containers_are_found() {
        let document = parse(r#"{"a": [[1, 2], {"x": [3]}], "b": 4}"#);
        let View::Object(members) = document.root().view() else {
            panic!("an object")
        };
        let keys: Vec<&str> = members.clone().map(|(key, _)| key).collect();
        assert_eq!(keys, ["a", "b"]);
        let b = Object::get(&members, &"b".to_owned()).unwrap();
        assert!(matches!(b.view(), View::Int(4)));
    }

    #[test]
    fn the_document_keeps_the_contract_jsonschema_relies_on() {
        let text = jsonschema::json::conformance::document().to_string();
        let document = parse(&text);
        jsonschema::json::conformance::assert_conformance::<DocumentJson>(&document.root());
    }

    #[test]
    fn documents_are_valid_exactly_when_their_values_are() {
        let schemas = [
            json!({"type": "array", "items": {"type": "number"}}),
            json!({"type": "array", "items": {"type": "integer"}, "maxItems": 3}),
            json!({"type": "object", "properties": {"a": {"type": "string", "minLength": 2}},
                   "required": ["a"], "additionalProperties": false}),
            json!({"$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"},
                   "v": {"type": "integer", "minimum": 0}}}}, "$ref": "#/$defs/N"}),
            json!({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}),
            json!({"type": "array", "uniqueItems": true}),
            json!({"enum": [1, "x", [1, 2], {"a": null}]}),
            json!({"type": "number", "multipleOf": 0.5, "exclusiveMaximum": 10}),
            json!({"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]}),
        ];
        let instances = [
            "[1, 2.5, 3]",
            "[1, 2, 3]",
            "[1, 2, 3, 4]",
            "[1.0, 2]",
            "[1, \"2\"]",
            r#"{"a": "xy"}"#,
            r#"{"a": "x"}"#,
            r#"{"a": "xy", "b": 1}"#,
            r#"{"n": {"n": {"v": 1}}, "v": 2}"#,
            r#"{"n": {"n": {"v": -1}}}"#,
            r#"{"abc": 1, "Abc": 2}"#,
            "[1, 1.0]",
            "[{\"a\": null}, {\"a\": null}]",
            r#"{"a": null}"#,
            "[1, 2]",
            "9.5",
            "10",
            "7.25",
            "null",
            "\"2024-02-30\"",
            "\"2024-02-03\"",
            "123456789012345678901234567890",
        ];
        for schema in &schemas {
            let ours = options::<DocumentJson>(schema);
            let theirs = options::<jsonschema::json::SerdeJson>(schema);
            for text in instances {
                let value: Value = serde_json::from_str(text).unwrap();
                assert_eq!(
                    ours.is_valid(parse(text).root()),
                    theirs.is_valid(&value),
                    "{schema} on {text}"
                );
            }
        }
    }

    fn options<F: Json>(schema: &Value) -> jsonschema::Validator<F> {
        jsonschema::options_for::<F>()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema)
            .unwrap()
    }
}
