//! A [`Document`] built from serde_json's parser, one value at a time.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{Document, Kind};

/// How serde_json (with `arbitrary_precision`) hands a number to a visitor:
/// as a one-entry map under this key, holding the number's text.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

pub(super) fn build(bytes: &[u8]) -> Result<Document, serde_json::Error> {
    let mut builder = Builder::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Build(&mut builder).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(builder.doc)
}

#[derive(Default)]
struct Builder {
    doc: Document,
    /// A hash of each key of the objects being built, innermost last.
    key_hashes: Vec<u64>,
}

impl Builder {
    fn push_number(&mut self, text: &str) {
        // As Python's `json` reads numbers: an integer unless written with a
        // fraction or an exponent. `-0` stays text: the int 0, but the float
        // -0.0 where floats are wanted.
        let integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
        if integer && text != "-0" {
            if let Ok(int) = text.parse::<i64>() {
                return self.doc.push(Kind::Int, int as u64);
            }
            if let Ok(int) = text.parse::<u64>() {
                return self.doc.push(Kind::UInt, int);
            }
        } else if !integer {
            if let Some(float) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
                return self.doc.push(Kind::Float, float.to_bits());
            }
        }
        let span = self.doc.store(text);
        self.doc.push(Kind::Digits, span);
    }

    /// Starts a container at the next index; [`Builder::close`] completes it.
    fn open(&mut self, kind: Kind) -> usize {
        self.doc.push(kind, 0);
        self.doc.kinds.len() - 1
    }

    fn close(&mut self, at: usize, count: u64) {
        self.doc.words[at] = count << 32 | self.doc.kinds.len() as u64;
    }

    /// Notes the key stored as `span` of the object being built.
    fn key(&mut self, span: u64) {
        let hash = fnv1a(self.doc.spanned(span).as_bytes());
        self.key_hashes.push(hash);
    }

    /// Ends an object whose keys' hashes start at `first`: two alike may be one key twice.
    fn keys_done(&mut self, first: usize) {
        let hashes = &mut self.key_hashes[first..];
        if hashes.len() > 1 {
            hashes.sort_unstable();
            if hashes.windows(2).any(|pair| pair[0] == pair[1]) {
                self.doc.repeated_keys = true;
            }
        }
        self.key_hashes.truncate(first);
    }
}

/// FNV-1a: a collision only sends the body down the `Value` path.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Builds one value (and what it holds) into the document.
struct Build<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.doc.push(Kind::Null, 0);
        Ok(())
    }

    fn visit_bool<E>(self, flag: bool) -> Result<(), E> {
        let kind = if flag { Kind::True } else { Kind::False };
        self.0.doc.push(kind, 0);
        Ok(())
    }

    // Without `arbitrary_precision` numbers arrive as these.
    fn visit_i64<E>(self, int: i64) -> Result<(), E> {
        self.0.doc.push(Kind::Int, int as u64);
        Ok(())
    }

    fn visit_u64<E>(self, int: u64) -> Result<(), E> {
        match i64::try_from(int) {
            Ok(int) => self.0.doc.push(Kind::Int, int as u64),
            Err(_) => self.0.doc.push(Kind::UInt, int),
        }
        Ok(())
    }

    fn visit_f64<E>(self, float: f64) -> Result<(), E> {
        self.0.doc.push(Kind::Float, float.to_bits());
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        let span = self.0.doc.store(text);
        self.0.doc.push(Kind::Str, span);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let builder = self.0;
        let at = builder.open(Kind::Array);
        let mut count = 0;
        while seq.next_element_seed(Build(builder))?.is_some() {
            count += 1;
        }
        builder.close(at, count);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let builder = self.0;
        let first = match map.next_key_seed(FirstKey(builder))? {
            None => {
                let at = builder.open(Kind::Object);
                builder.close(at, 0);
                return Ok(());
            }
            // A number, told as serde_json's own `Value` tells it: by its first key.
            Some(None) => {
                let digits = match map.next_value::<NumberText>()? {
                    NumberText::Parsed(digits) => Cow::Owned(digits),
                    // An object of the body written as serde_json hands numbers
                    // over: a number only if its text is one (as for `Value`).
                    NumberText::Written(digits) => match digits.parse::<serde_json::Number>() {
                        Ok(_) => digits,
                        Err(error) => return Err(de::Error::custom(error)),
                    },
                };
                builder.push_number(&digits);
                return Ok(());
            }
            Some(Some(key)) => key,
        };
        let at = builder.open(Kind::Object);
        let hashes = builder.key_hashes.len();
        let mut key = first;
        let mut count = 0;
        loop {
            builder.doc.push(Kind::Str, key);
            builder.key(key);
            map.next_value_seed(Build(builder))?;
            count += 1;
            match map.next_key_seed(NextKey(builder))? {
                Some(next) => key = next,
                None => break,
            }
        }
        builder.keys_done(hashes);
        builder.close(at, count);
        Ok(())
    }
}

/// An object's first key, stored in the text buffer (its span's word); `None`
/// for the key by which serde_json hands over a number (not stored).
struct FirstKey<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for FirstKey<'_> {
    type Value = Option<u64>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FirstKey<'_> {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, text: &str) -> Result<Option<u64>, E> {
        if text == NUMBER_TOKEN {
            return Ok(None);
        }
        Ok(Some(self.0.doc.store(text)))
    }
}

/// Any later key of an object, stored in the text buffer: its span's word.
struct NextKey<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for NextKey<'_> {
    type Value = u64;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NextKey<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, text: &str) -> Result<u64, E> {
        Ok(self.0.doc.store(text))
    }
}

/// A number's text: as serde_json's parser made it (an owned string), or as
/// written in the body by a client imitating that form (text to check).
enum NumberText<'de> {
    Parsed(String),
    Written(Cow<'de, str>),
}

impl<'de> de::Deserialize<'de> for NumberText<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(NumberTextVisitor)
    }
}

struct NumberTextVisitor;

impl<'de> Visitor<'de> for NumberTextVisitor {
    type Value = NumberText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string containing a number")
    }

    fn visit_string<E>(self, text: String) -> Result<NumberText<'de>, E> {
        Ok(NumberText::Parsed(text))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<NumberText<'de>, E> {
        Ok(NumberText::Written(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<NumberText<'de>, E> {
        Ok(NumberText::Written(Cow::Owned(text.to_owned())))
    }
}
