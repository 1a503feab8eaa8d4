//! A [`Document`] as `jsonschema` validates it, in place: its implementation
//! of the crate's representation traits.

use std::borrow::Cow;

use jsonschema::json::{Array, Json, JsonNumber, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::{Number, Value};

use super::{Document, Items, Kind, Members, Node, View};

/// A document as `jsonschema` validates it, in place.
pub struct DocumentJson;

impl Json for DocumentJson {
    type Node<'a> = Node<'a>;
    type PreparedKey = String;
    /// A one-string document, for `propertyNames`.
    type StringBuffer = Document;

    // A lookup scans the object's keys: a pass over them is rarely dearer.
    const KEYS_PER_LOOKUP: usize = 8;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Document,
        string: &str,
        f: impl FnOnce(Node<'_>) -> T,
    ) -> T {
        buffer.kinds.clear();
        buffer.words.clear();
        buffer.text.clear();
        let span = buffer.store(string);
        buffer.push(Kind::Str, span);
        f(buffer.root())
    }
}

impl<'a> jsonschema::json::Node<'a, DocumentJson> for Node<'a> {
    type Object = Members<'a>;
    type Array = Items<'a>;
    type Number = DocumentNumber<'a>;

    fn as_object(&self) -> Option<Members<'a>> {
        (self.kind() == Kind::Object).then(|| Members(self.children()))
    }

    fn as_array(&self) -> Option<Items<'a>> {
        (self.kind() == Kind::Array).then(|| self.children())
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        (self.kind() == Kind::Str).then(|| Cow::Borrowed(self.text()))
    }

    fn as_number(&self) -> Option<DocumentNumber<'a>> {
        Some(match self.view() {
            View::Int(int) => DocumentNumber::Int(int),
            View::UInt(int) => DocumentNumber::UInt(int),
            View::Float(float) => DocumentNumber::Float(float),
            View::Digits(text) => DocumentNumber::Digits(text),
            _ => return None,
        })
    }

    fn is_number(&self) -> bool {
        matches!(
            self.kind(),
            Kind::Int | Kind::UInt | Kind::Float | Kind::Digits
        )
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.kind() {
            Kind::True => Some(true),
            Kind::False => Some(false),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }

    fn json_type(&self) -> JsonType {
        match self.kind() {
            Kind::Null => JsonType::Null,
            Kind::False | Kind::True => JsonType::Boolean,
            Kind::Int | Kind::UInt | Kind::Float | Kind::Digits => JsonType::Number,
            Kind::Str => JsonType::String,
            Kind::Array => JsonType::Array,
            Kind::Object => JsonType::Object,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.to_json())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        let address = std::ptr::from_ref::<Document>(self.doc) as usize;
        Some(NodeIdentity::tagged(address, self.at))
    }
}

impl<'a> Object<'a, DocumentJson> for Members<'a> {
    type Node = Node<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.left as usize
    }

    fn get(&self, key: &String) -> Option<Node<'a>> {
        self.clone()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }

    fn members(&self) -> Members<'a> {
        self.clone()
    }
}

impl<'a> Array<'a, DocumentJson> for Items<'a> {
    type Node = Node<'a>;
    type ElementsIter = Items<'a>;

    fn len(&self) -> usize {
        self.left as usize
    }

    fn elements(&self) -> Items<'a> {
        self.clone()
    }
}

/// A number of a document, as `jsonschema` reads it.
#[derive(Clone, Copy)]
pub enum DocumentNumber<'a> {
    Int(i64),
    UInt(u64),
    Float(f64),
    Digits(&'a str),
}

impl JsonNumber for DocumentNumber<'_> {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            DocumentNumber::Int(int) => u64::try_from(int).ok(),
            DocumentNumber::UInt(int) => Some(int),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            DocumentNumber::Int(int) => Some(int),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            DocumentNumber::Int(int) => Some(int as f64),
            DocumentNumber::UInt(int) => Some(int as f64),
            DocumentNumber::Float(float) => Some(float),
            DocumentNumber::Digits(text) => text.parse::<f64>().ok().filter(|f| f.is_finite()),
        }
    }

    fn as_str(&self) -> Cow<'_, str> {
        match *self {
            DocumentNumber::Digits(text) => Cow::Borrowed(text),
            _ => Cow::Owned(self.to_number().to_string()),
        }
    }

    fn to_number(&self) -> Cow<'_, Number> {
        Cow::Owned(match *self {
            DocumentNumber::Int(int) => Number::from(int),
            DocumentNumber::UInt(int) => Number::from(int),
            DocumentNumber::Float(float) => Number::from_f64(float).unwrap_or_else(|| 0.into()),
            DocumentNumber::Digits(text) => text.parse().unwrap_or_else(|_| 0.into()),
        })
    }

    fn is_integer(&self) -> bool {
        match *self {
            DocumentNumber::Int(_) | DocumentNumber::UInt(_) => true,
            DocumentNumber::Float(float) => float.fract() == 0.0,
            // An integer beyond 64 bits; a float beyond `f64` is refused
            // when it is made a Python float, whatever its schema says.
            DocumentNumber::Digits(_) => self.is_written_as_integer(),
        }
    }

    fn is_written_as_integer(&self) -> bool {
        match *self {
            DocumentNumber::Int(_) | DocumentNumber::UInt(_) => true,
            DocumentNumber::Float(_) => false,
            DocumentNumber::Digits(text) => !text.contains(['.', 'e', 'E']),
        }
    }
}
